// Connected UDP sockets (UdpSocket::connect) over real loopback sockets (127.0.0.1 and
// ::1 only): request and response with a bound echo server, ICMP port unreachable as
// on_peer_error(ECONNREFUSED) with the socket serving on, datagrams from a third party
// filtered out, send() refused without a peer, and connect's errors; on every backend, and
// on io_uring both by completion and by readiness.
#include "support.hpp"

#include <optional>

#include "echo/udp_echo.hpp"
#include "netloop/datagram.hpp"
#include "netloop/udp_socket.hpp"

using namespace nltest;
using netloop::Address;
using netloop::DatagramHandler;
using netloop::DatagramSocket;
using netloop::UdpOptions;
using netloop::UdpSocket;

namespace {

// One backend, served by completion or not (completion only differs on io_uring).
struct Mode {
  std::string backend;
  bool completion;
};

std::vector<Mode> modes() {
  std::vector<Mode> out;
  for (const auto& b : usable_backends()) {
    out.push_back({b, false});
    if (b == "io_uring") out.push_back({b, true});
  }
  return out;
}

UdpOptions options_for(const Mode& m) {
  UdpOptions o;
  o.completion = m.completion;
  return o;
}

bool ipv6_udp_loopback(std::string& why) {
  Sock s(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) {
    why = std::string("socket(AF_INET6, SOCK_DGRAM): ") + std::strerror(errno);
    return false;
  }
  Address a = Address::ipv6_loopback(0);
  if (::bind(s.get(), a.sockaddr_ptr(), a.length()) != 0) {
    why = std::string("bind [::1]:0: ") + std::strerror(errno);
    return false;
  }
  return true;
}

Address loopback(int family, uint16_t port = 0) {
  return family == AF_INET6 ? Address::ipv6_loopback(port) : Address::ipv4_loopback(port);
}

// What a client's handler heard.
struct ClientLog {
  int opened = 0;
  int closed = 0;
  std::vector<std::pair<std::string, Address>> datagrams;
  std::vector<std::error_code> peer_errors;
};

class Recorder final : public DatagramHandler {
 public:
  explicit Recorder(ClientLog& j) : j_(j) {}
  void on_open(DatagramSocket&) override { ++j_.opened; }
  void on_datagram(DatagramSocket&, std::span<const std::byte> data, const Address& from) override {
    j_.datagrams.emplace_back(std::string(reinterpret_cast<const char*>(data.data()), data.size()),
                              from);
  }
  void on_peer_error(DatagramSocket& s, std::error_code ec) override {
    CHECK(s.is_open());
    j_.peer_errors.push_back(ec);
  }
  void on_close(DatagramSocket&, const netloop::CloseInfo&) override { ++j_.closed; }

 private:
  ClientLog& j_;
};

// A loop on the test thread: run_until decides when the sockets look at their descriptors.
struct Loop {
  std::unique_ptr<netloop::EventLoop> loop;

  explicit Loop(const std::string& backend) {
    std::string why;
    auto l = netloop::EventLoop::create(backend, &why);
    REQUIRE_MESSAGE(l.ok(), why);
    loop = std::move(*l);
  }

  // Runs the loop until `pred` holds or `timeout` passes, then once more without waiting
  // (by completion, sends go to the kernel with the loop's next wait).
  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds timeout = 5s) {
    auto deadline = SteadyClock::now() + timeout;
    while (!pred()) {
      if (SteadyClock::now() >= deadline) return false;
      loop->run_once(20);
    }
    loop->run_once(0);
    return true;
  }
  void run_for(std::chrono::milliseconds t) {
    run_until([] { return false; }, t);
  }
};

std::unique_ptr<UdpSocket> echo_server(Loop& l, const Address& at, const UdpOptions& o) {
  auto s = UdpSocket::bind(*l.loop, at, netloop::echo::make_udp_echo_handler(), o);
  REQUIRE_MESSAGE(s.ok(), "bind " << at.to_string() << ": " << s.error().message());
  return std::move(*s);
}

std::unique_ptr<UdpSocket> client(Loop& l, const Address& to, ClientLog& j, const UdpOptions& o,
                                  const std::optional<Address>& local = {}) {
  auto s = UdpSocket::connect(*l.loop, to, std::make_unique<Recorder>(j), o, local);
  REQUIRE_MESSAGE(s.ok(), "connect " << to.to_string() << ": " << s.error().message());
  return std::move(*s);
}

// A port on `family`'s loopback that nothing is bound to (it was a moment ago).
Address closed_port(int family) {
  Sock s(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE(s.valid());
  Address a = loopback(family);
  REQUIRE(::bind(s.get(), a.sockaddr_ptr(), a.length()) == 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

std::optional<std::string> skip_without(int family) {
  std::string why;
  if (family == AF_INET6 && !ipv6_udp_loopback(why)) return why;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------

void request_response(const Mode& m, int family) {
  Loop l(m.backend);
  auto server = echo_server(l, loopback(family), options_for(m));
  ClientLog j;
  auto c = client(l, server->local_address(), j, options_for(m));
  CHECK(j.opened == 1);
  CHECK(c->is_open());
  CHECK(c->connected());
  CHECK(c->peer_address() == server->local_address());
  CHECK(c->local_address().family() == family);
  CHECK(c->local_address().host() == loopback(family).host());
  CHECK(c->local_address().port() != 0);
  CHECK(c->uses_completion() == (m.completion && m.backend == "io_uring"));

  size_t want = 0;
  uint64_t bytes = 0;
  for (size_t size : {size_t(1), size_t(1400), size_t(65507), size_t(0)}) {
    CAPTURE(size);
    const std::string msg = random_bytes(size, size + 7);
    REQUIRE(c->send(msg));
    ++want;
    bytes += size;
    REQUIRE_MESSAGE(l.run_until([&] { return j.datagrams.size() >= want; }), "no echo within 5 s");
    CHECK(diff_bytes(j.datagrams.back().first, msg) == "");
    CHECK(j.datagrams.back().second == server->local_address());
  }
  // The byte-span form too.
  const std::string last = "span";
  REQUIRE(c->send(std::as_bytes(std::span(last))));
  REQUIRE(l.run_until([&] { return j.datagrams.size() >= want + 1; }));
  CHECK(j.datagrams.back().first == last);
  ++want;
  bytes += last.size();
  l.run_for(50ms);
  CHECK(j.datagrams.size() == want);  // one reply each, nothing else
  c->settle();
  CHECK(c->stats().datagrams_out == want);
  CHECK(c->stats().bytes_out == bytes);
  CHECK(c->stats().datagrams_in == want);
  CHECK(c->stats().peer_errors == 0);
  CHECK(j.peer_errors.empty());
  c.reset();
  CHECK(j.closed == 1);
}

}  // namespace

TEST_CASE("UDP connect: request and response with a bound echo server (IPv4)") {
  for (const auto& m : modes()) {
    CAPTURE(m.backend);
    CAPTURE(m.completion);
    request_response(m, AF_INET);
  }
}

TEST_CASE("UDP connect: request and response with a bound echo server (IPv6 [::1])") {
  if (auto why = skip_without(AF_INET6)) {
    MESSAGE("skipped: ::1 cannot be bound here (" << *why << ")");
    return;
  }
  for (const auto& m : modes()) {
    CAPTURE(m.backend);
    CAPTURE(m.completion);
    request_response(m, AF_INET6);
  }
}

namespace {

void refused_then_served(const Mode& m, int family) {
  Loop l(m.backend);
  const Address nobody = closed_port(family);
  ClientLog j;
  auto c = client(l, nobody, j, options_for(m));
  REQUIRE(c->send("anyone there?"));
  // ICMP port unreachable comes back at once on loopback (and is not rate-limited there).
  REQUIRE_MESSAGE(l.run_until([&] { return !j.peer_errors.empty(); }),
                  "no on_peer_error within 5 s");
  CHECK(j.peer_errors[0] == std::errc::connection_refused);
  CHECK(c->stats().peer_errors >= 1);
  CHECK(c->is_open());
  CHECK(j.closed == 0);

  // The socket serves on: once someone listens on that port, it answers.
  auto server = echo_server(l, nobody, options_for(m));
  const size_t errors = j.peer_errors.size();
  REQUIRE(c->send("now?"));
  REQUIRE_MESSAGE(l.run_until([&] { return !j.datagrams.empty(); }), "no echo within 5 s");
  CHECK(j.datagrams[0].first == "now?");
  CHECK(j.datagrams[0].second == nobody);
  CHECK(j.peer_errors.size() == errors);
  CHECK(j.closed == 0);

  // And errors come again when the peer goes again.
  server.reset();
  l.loop->run_once(0);
  REQUIRE(c->send("gone again?"));
  REQUIRE(l.run_until([&] { return j.peer_errors.size() > errors; }));
  CHECK(j.peer_errors.back() == std::errc::connection_refused);
  c.reset();
  CHECK(j.closed == 1);
}

}  // namespace

TEST_CASE("UDP connect: a closed port reports ECONNREFUSED to on_peer_error; the socket serves on (IPv4)") {
  for (const auto& m : modes()) {
    CAPTURE(m.backend);
    CAPTURE(m.completion);
    refused_then_served(m, AF_INET);
  }
}

TEST_CASE("UDP connect: a closed port reports ECONNREFUSED to on_peer_error; the socket serves on (IPv6 [::1])") {
  if (auto why = skip_without(AF_INET6)) {
    MESSAGE("skipped: ::1 cannot be bound here (" << *why << ")");
    return;
  }
  for (const auto& m : modes()) {
    CAPTURE(m.backend);
    CAPTURE(m.completion);
    refused_then_served(m, AF_INET6);
  }
}

TEST_CASE("UDP connect: the send that surfaces an ICMP error counts it; on_peer_error comes from the loop, not from inside send()") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    // By readiness: each send() outside a receive batch is its own sendto, so the error
    // surfaces on this thread's second send (by completion it would go with the next wait).
    Mode m{backend, false};
    Loop l(backend);
    ClientLog j;
    auto c = client(l, closed_port(AF_INET), j, options_for(m));
    REQUIRE(c->send("first"));
    std::this_thread::sleep_for(50ms);  // the ICMP error arrives; the loop does not run
    CHECK(c->stats().peer_errors == 0);
    REQUIRE(c->send("second"));         // surfaces it, and is dropped with it
    CHECK(c->stats().peer_errors == 1);
    CHECK(c->stats().datagrams_out == 1);
    CHECK(j.peer_errors.empty());       // not from inside send()
    REQUIRE(l.run_until([&] { return !j.peer_errors.empty(); }, 2s));
    CHECK(j.peer_errors.size() == 1);
    CHECK(j.peer_errors[0] == std::errc::connection_refused);
  }
}

TEST_CASE("UDP connect: datagrams from anyone but the peer are not delivered") {
  for (const auto& m : modes()) {
    CAPTURE(m.backend);
    CAPTURE(m.completion);
    Loop l(m.backend);
    auto server = echo_server(l, Address::ipv4_loopback(0), options_for(m));
    ClientLog j;
    for (bool bound_first : {false, true}) {
      CAPTURE(bound_first);
      j = {};
      auto c = bound_first ? client(l, server->local_address(), j, options_for(m),
                                    Address::ipv4_loopback(0))
                           : client(l, server->local_address(), j, options_for(m));
      // A third party on the same host writes to the client's port.
      Sock intruder(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      REQUIRE(intruder.valid());
      const Address to = c->local_address();
      for (int i = 0; i < 3; ++i)
        REQUIRE(::sendto(intruder.get(), "intruder", 8, 0, to.sockaddr_ptr(), to.length()) == 8);
      REQUIRE(c->send("ping"));
      REQUIRE(l.run_until([&] { return !j.datagrams.empty(); }));
      l.run_for(100ms);
      REQUIRE(j.datagrams.size() == 1);
      CHECK(j.datagrams[0].first == "ping");
      CHECK(j.datagrams[0].second == server->local_address());
      CHECK(c->stats().datagrams_in == 1);
    }
  }
}

TEST_CASE("UDP send: refused on a socket from bind; a connected socket sends to its peer alone") {
  for (const auto& m : modes()) {
    CAPTURE(m.backend);
    CAPTURE(m.completion);
    Loop l(m.backend);
    auto server = echo_server(l, Address::ipv4_loopback(0), options_for(m));
    CHECK_FALSE(server->connected());
    CHECK(server->peer_address().family() == AF_UNSPEC);
    CHECK_FALSE(server->send("nowhere"));
    CHECK_FALSE(server->send(std::string_view()));
    server->settle();
    CHECK(server->stats().datagrams_out == 0);
    CHECK(server->stats().send_calls == 0);

    // A connected socket: send_to its peer is send(); to anyone else it is refused.
    ClientLog j;
    auto c = client(l, server->local_address(), j, options_for(m));
    Sock other(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    Address other_at = Address::ipv4_loopback(0);
    REQUIRE(::bind(other.get(), other_at.sockaddr_ptr(), other_at.length()) == 0);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    REQUIRE(::getsockname(other.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
    other_at = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    CHECK_FALSE(c->send_to(other_at, "astray"));
    CHECK(c->send_to(server->local_address(), "to the peer"));
    REQUIRE(l.run_until([&] { return !j.datagrams.empty(); }));
    CHECK(j.datagrams[0].first == "to the peer");
    char buf[16];
    CHECK(::recv(other.get(), buf, sizeof buf, MSG_DONTWAIT) < 0);  // nothing went astray
    c->settle();
    CHECK(c->stats().datagrams_out == 1);
  }
}

TEST_CASE("UDP connect: errors come back as results, and no handler is opened") {
  Loop l("");
  ClientLog j;
  auto try_connect = [&](const Address& to, const UdpOptions& o,
                         const std::optional<Address>& local = {}) {
    return UdpSocket::connect(*l.loop, to, std::make_unique<Recorder>(j), o, local);
  };
  const Address v4 = Address::ipv4_loopback(9);
  {
    auto r = try_connect(v4, {}, Address::ipv6_loopback(0));  // local of the other family
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == std::errc::address_family_not_supported);
  }
  {
    // The other way round, which the kernel would refuse with EINVAL.
    auto r = try_connect(Address::ipv6_loopback(9), {}, Address::ipv4_loopback(0));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == std::errc::address_family_not_supported);
  }
  {
    auto r = try_connect(Address(), {});  // no address at all
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == std::errc::address_family_not_supported);
  }
  {
    UdpOptions bad;
    bad.batch = 0;
    auto r = try_connect(v4, bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == std::errc::invalid_argument);
  }
  {
    auto taken = echo_server(l, Address::ipv4_loopback(0), {});
    auto r = try_connect(v4, {}, taken->local_address());  // the local port is taken
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == std::errc::address_in_use);
  }
  CHECK(j.opened == 0);
  CHECK(j.closed == 0);
  {
    // Bound first to a chosen local address: it is the one the socket has.
    const Address here = closed_port(AF_INET);
    auto r = try_connect(v4, {}, here);
    REQUIRE_MESSAGE(r.ok(), r.error().message());
    CHECK((*r)->local_address() == here);
    CHECK((*r)->peer_address() == v4);
    CHECK(j.opened == 1);
  }
  CHECK(j.closed == 1);
}
