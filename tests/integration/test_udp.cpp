// UDP over real loopback sockets: UdpSocket + the UDP echo handler against plain client
// sockets (every one with a receive timeout). Whole, byte-exact datagrams up to 65,507
// bytes on IPv4 and IPv6, 100 clients at once, batched receive and send, truncation,
// peers that vanish, oversized replies and bind errors; every case on every backend. The
// handler's life (on_open, on_drain, on_close) and the socket's timers at the end.
#include "support.hpp"

#include <map>
#include <optional>
#include <set>
#include <thread>

#include <sys/syscall.h>

#include "../unit/seccomp_refuse.hpp"

#include "echo/udp_echo.hpp"
#include "netloop/datagram.hpp"
#include "netloop/udp_socket.hpp"

using namespace nltest;
using netloop::Address;
using netloop::DatagramHandler;
using netloop::DatagramSocket;
using netloop::UdpOptions;
using netloop::UdpSocket;
using netloop::UdpStats;

namespace {

using HandlerMaker = std::function<std::unique_ptr<DatagramHandler>()>;

constexpr size_t kMaxIpv4Payload = 65507;  // 65535 - 20 (IPv4) - 8 (UDP)

// ---------------------------------------------------------------------------------------
// The server: EventLoop + UdpSocket on a background thread

class UdpServerThread : public LoopThread<UdpSocket> {
 public:
  struct Config {
    std::string backend;  // "" = default
    Address address = Address::ipv4_loopback(0);
    HandlerMaker handler = [] { return netloop::echo::make_udp_echo_handler(); };
    UdpOptions options;
  };

  // Creates the loop and binds the socket on the new thread; returns the bind error.
  std::error_code start(Config cfg) {
    std::string backend = cfg.backend;
    return LoopThread::start(std::move(backend), [cfg = std::move(cfg)](netloop::EventLoop& loop) {
      return UdpSocket::bind(loop, cfg.address, cfg.handler(), cfg.options);
    });
  }

  // Runs fn(socket) on the loop thread and returns its result.
  template <class F>
  auto call(F fn) {
    return LoopThread::call([fn = std::move(fn)](netloop::EventLoop&, UdpSocket* s) mutable {
      return fn(*s);
    });
  }

  UdpStats stats() {
    return call([](UdpSocket& s) { return s.stats(); });
  }
};

// ---------------------------------------------------------------------------------------
// Client datagram sockets

// An unconnected UDP socket bound to the loopback address of `family` (port picked by the
// kernel), with receive and send timeouts; `rcvbuf` > 0 sets SO_RCVBUF.
Sock udp_client(int family = AF_INET, int rcvbuf = 0) {
  Sock s(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE_MESSAGE(s.valid(), "socket(SOCK_DGRAM): " << std::strerror(errno));
  set_timeouts(s.get(), 5s);
  if (rcvbuf > 0) ::setsockopt(s.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  Address local = family == AF_INET6 ? Address::ipv6_loopback(0) : Address::ipv4_loopback(0);
  REQUIRE_MESSAGE(::bind(s.get(), local.sockaddr_ptr(), local.length()) == 0,
                  "bind client: " << std::strerror(errno));
  return s;
}

Address local_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

// One sendto; true when the whole datagram was handed to the kernel.
bool send_dgram(int fd, const Address& to, std::string_view data) {
  ssize_t n;
  do {
    n = ::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL, to.sockaddr_ptr(), to.length());
  } while (n < 0 && errno == EINTR);
  return n >= 0 && size_t(n) == data.size();
}

struct Datagram {
  std::string data;
  Address from;
  bool truncated = false;  // larger than our 128 KiB receive area: never for UDP
};

// Waits at most `timeout` for one datagram; nullopt on timeout (or a receive error, with
// `*error` set to its errno).
std::optional<Datagram> recv_dgram(int fd, std::chrono::milliseconds timeout = 5s,
                                   int* error = nullptr) {
  if (error) *error = 0;
  auto deadline = SteadyClock::now() + timeout;
  std::string buf(128 * KiB, '\0');
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, int(std::max<long>(left.count(), 0)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    sockaddr_storage ss{};
    iovec iov{buf.data(), buf.size()};
    msghdr h{};
    h.msg_name = &ss;
    h.msg_namelen = sizeof ss;
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    ssize_t n = ::recvmsg(fd, &h, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (error) *error = errno;
      return std::nullopt;
    }
    Datagram d;
    d.data.assign(buf.data(), size_t(n));
    d.from = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), h.msg_namelen);
    d.truncated = (h.msg_flags & MSG_TRUNC) != 0;
    return d;
  }
}

// Sends `msg` and waits for one datagram back.
std::optional<Datagram> round_trip(int fd, const Address& server, std::string_view msg,
                                   std::chrono::milliseconds timeout = 5s) {
  if (!send_dgram(fd, server, msg)) {
    MESSAGE("sendto of " << msg.size() << " bytes failed: " << std::strerror(errno));
    return std::nullopt;
  }
  return recv_dgram(fd, timeout);
}

// Nothing arrives within `quiet` (a negative check: a slow machine can only make a
// broken server pass, never a correct one fail).
bool nothing_arrives(int fd, std::chrono::milliseconds quiet = 300ms) {
  return !recv_dgram(fd, quiet).has_value();
}

bool ipv6_udp_loopback(std::string& why) {
  int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::string("socket(AF_INET6, SOCK_DGRAM): ") + std::strerror(errno);
    return false;
  }
  Address a = Address::ipv6_loopback(0);
  bool ok = ::bind(fd, a.sockaddr_ptr(), a.length()) == 0;
  if (!ok) why = std::string("bind [::1]:0: ") + std::strerror(errno);
  ::close(fd);
  return ok;
}

// A loop on the test thread, with one UdpSocket: run_once decides exactly when the server
// looks at its socket.
struct LocalServer {
  std::unique_ptr<netloop::EventLoop> loop;
  std::unique_ptr<UdpSocket> socket;

  LocalServer(const std::string& backend, HandlerMaker handler, const UdpOptions& options,
              Address address = Address::ipv4_loopback(0)) {
    std::string why;
    auto l = netloop::EventLoop::create(backend, &why);
    REQUIRE_MESSAGE(l.ok(), why);
    loop = std::move(*l);
    auto s = UdpSocket::bind(*loop, address, handler(), options);
    REQUIRE_MESSAGE(s.ok(), "bind: " << s.error().message());
    socket = std::move(*s);
  }
  ~LocalServer() {
    socket.reset();
    if (loop) loop->run_once(0);
  }
  const Address& address() const { return socket->local_address(); }
  const UdpStats& stats() const { return socket->stats(); }

  // Runs the loop until `pred` holds (checked between iterations) or `timeout` passes,
  // then once more without waiting: replies sent by completion (io_uring) go to the
  // kernel with the loop's next wait, as they would at once in a running loop.
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
};

std::string tagged(std::string_view tag, size_t size, uint64_t seed) {
  std::string s(tag);
  s.push_back('\0');
  if (s.size() >= size) return s.substr(0, size);
  return s + random_bytes(size - s.size(), seed);
}

// ---------------------------------------------------------------------------------------
// Whole datagrams, IPv4 and IPv6

void echo_sizes(const std::string& backend, const Address& bind_to) {
  UdpServerThread server;
  UdpServerThread::Config cfg;
  cfg.backend = backend;
  cfg.address = bind_to;
  REQUIRE_MESSAGE(!server.start(cfg), "cannot start the server");
  CAPTURE(server.backend());
  CHECK(server.address().family() == bind_to.family());
  CHECK(server.address().host() == bind_to.host());
  CHECK(server.address().port() != 0);

  Sock c = udp_client(bind_to.family());
  const Address me = local_of(c.get());
  uint64_t bytes = 0, count = 0;
  for (int round = 0; round < 2; ++round) {
    for (size_t size : {size_t(1), size_t(1400), kMaxIpv4Payload, size_t(0)}) {
      CAPTURE(round);
      CAPTURE(size);
      const std::string msg = random_bytes(size, size * 31 + uint64_t(round));
      auto got = round_trip(c.get(), server.address(), msg);
      REQUIRE_MESSAGE(got.has_value(), "no echo within 5 s");
      CHECK_FALSE(got->truncated);
      CHECK(got->data.size() == size);
      CHECK(diff_bytes(got->data, msg) == "");
      CHECK(got->from == server.address());
      bytes += size;
      ++count;
    }
  }
  // Exactly one reply per datagram: nothing else is waiting.
  CHECK(nothing_arrives(c.get()));

  UdpStats st = server.stats();
  CHECK(st.datagrams_in == count);
  CHECK(st.datagrams_out == count);
  CHECK(st.bytes_in == bytes);
  CHECK(st.bytes_out == bytes);
  CHECK(st.dropped_truncated == 0);
  CHECK(st.dropped_send_full == 0);
  CHECK(st.dropped_too_large == 0);
  CHECK(st.receive_calls >= 1);
  CHECK(st.receive_calls <= count);
  CHECK(st.send_calls >= 1);
  CHECK(st.send_calls <= count);
  CHECK(me.port() != 0);
}

}  // namespace

TEST_CASE("UDP echo: 1, 1400 and 65507-byte datagrams come back whole and exact (IPv4)") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    echo_sizes(backend, Address::ipv4_loopback(0));
  }
}

TEST_CASE("UDP echo: 1, 1400 and 65507-byte datagrams come back whole and exact (IPv6 [::1])") {
  std::string why;
  if (!ipv6_udp_loopback(why)) {
    MESSAGE("skipped: ::1 cannot be bound here (" << why << ")");
    return;
  }
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    echo_sizes(backend, Address::ipv6_loopback(0));
  }
}

TEST_CASE("UDP echo: the reply goes to the sender's address, as the sender sees it") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    // The handler records each sender; the client compares with its own address.
    struct Seen {
      std::mutex m;
      std::vector<Address> from;
    };
    auto seen = std::make_shared<Seen>();
    class Recorder final : public DatagramHandler {
     public:
      explicit Recorder(std::shared_ptr<Seen> s) : s_(std::move(s)) {}
      void on_datagram(DatagramSocket& sock, std::span<const std::byte> data,
                       const Address& from) override {
        {
          std::lock_guard lock(s_->m);
          s_->from.push_back(from);
        }
        sock.send_to(from, data);
      }

     private:
      std::shared_ptr<Seen> s_;
    };
    UdpServerThread server;
    UdpServerThread::Config cfg;
    cfg.backend = backend;
    cfg.handler = [seen] { return std::make_unique<Recorder>(seen); };
    REQUIRE(!server.start(cfg));
    Sock a = udp_client();
    Sock b = udp_client();
    auto ra = round_trip(a.get(), server.address(), "from a");
    auto rb = round_trip(b.get(), server.address(), "from b");
    REQUIRE(ra.has_value());
    REQUIRE(rb.has_value());
    CHECK(ra->data == "from a");
    CHECK(rb->data == "from b");
    std::lock_guard lock(seen->m);
    REQUIRE(seen->from.size() == 2);
    CHECK(seen->from[0] == local_of(a.get()));
    CHECK(seen->from[1] == local_of(b.get()));
    CHECK(seen->from[0].to_string() == local_of(a.get()).to_string());
  }
}

// ---------------------------------------------------------------------------------------
// 100 clients at once

namespace {

void hundred_clients(const std::string& backend) {
  constexpr size_t kClients = 100;
  constexpr size_t kPerClient = 20;
  constexpr size_t kWindow = 3;  // datagrams in flight per client: bounded, so nothing drops
  UdpServerThread server;
  UdpServerThread::Config cfg;
  cfg.backend = backend;
  cfg.options.recv_buffer = 4 << 20;  // room for every datagram in flight (300 at most)
  REQUIRE_MESSAGE(!server.start(cfg), "cannot start the server");
  CAPTURE(server.backend());

  struct Client {
    Sock s;
    Address addr;
    std::vector<std::string> data;  // datagram k of this client
    std::vector<bool> got;
    size_t sent = 0;
    size_t received = 0;
  };
  std::vector<Client> clients(kClients);
  std::mt19937_64 rng(0xda7a);
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < kClients; ++i) {
    auto& c = clients[i];
    c.s = udp_client(AF_INET, 256 * 1024);
    c.addr = local_of(c.s.get());
    set_nonblocking(c.s.get());
    for (size_t k = 0; k < kPerClient; ++k) {
      // "c<client> d<k>" then random bytes: every datagram is distinct, and its owner and
      // sequence number can be read back from it.
      std::string head = "c";  // (appended piecewise: GCC 12 warns falsely on "c" + ...)
      head += std::to_string(i);
      head += " d";
      head += std::to_string(k);
      c.data.push_back(tagged(head, head.size() + 1 + rng() % 1000, i * 1000 + k));
      total_bytes += c.data.back().size();
    }
    c.got.assign(kPerClient, false);
  }

  size_t foreign = 0, mismatched = 0, duplicates = 0, wrong_source = 0, send_errors = 0;
  size_t done = 0;
  std::vector<char> buf(64 * KiB);
  std::vector<pollfd> pfds(kClients);
  auto started = SteadyClock::now();
  auto deadline = started + 20s;
  auto last_progress = started;  // a stall (lost datagrams) ends the run early
  while (done < kClients && SteadyClock::now() < deadline &&
         SteadyClock::now() - last_progress < 3s) {
    // Keep each client's window full.
    for (auto& c : clients) {
      while (c.sent < kPerClient && c.sent - c.received < kWindow) {
        if (!send_dgram(c.s.get(), server.address(), c.data[c.sent])) {
          if (errno != EAGAIN && errno != EWOULDBLOCK) ++send_errors;
          break;
        }
        ++c.sent;
      }
    }
    for (size_t i = 0; i < kClients; ++i) pfds[i] = {clients[i].s.get(), POLLIN, 0};
    int r = ::poll(pfds.data(), nfds_t(pfds.size()), 500);
    if (r < 0 && errno == EINTR) continue;
    REQUIRE(r >= 0);
    for (size_t i = 0; i < kClients; ++i) {
      if (!(pfds[i].revents & POLLIN)) continue;
      auto& c = clients[i];
      while (true) {
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        ssize_t n = ::recvfrom(c.s.get(), buf.data(), buf.size(), 0,
                               reinterpret_cast<sockaddr*>(&ss), &sl);
        if (n < 0) break;  // EAGAIN: drained
        if (!(Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), sl) == server.address()))
          ++wrong_source;
        std::string_view d(buf.data(), size_t(n));
        // Whose is it? "c<i> d<k>\0..."
        size_t k = kPerClient;
        unsigned ci = 0, dk = 0;
        if (std::sscanf(std::string(d.substr(0, 16)).c_str(), "c%u d%u", &ci, &dk) == 2 &&
            ci < kClients && dk < kPerClient) {
          if (ci != i) {
            ++foreign;
            continue;
          }
          k = dk;
        }
        if (k == kPerClient || d != c.data[k]) {
          ++mismatched;
          continue;
        }
        if (c.got[k]) {
          ++duplicates;
          continue;
        }
        c.got[k] = true;
        last_progress = SteadyClock::now();
        if (++c.received == kPerClient) ++done;
      }
    }
  }
  auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started);
  MESSAGE("backend " << server.backend() << ": " << kClients << " clients x " << kPerClient
                     << " datagrams echoed in " << elapsed.count() << " ms");

  size_t missing = 0;
  for (auto& c : clients) missing += kPerClient - c.received;
  UdpStats st = server.stats();
  INFO("server: in " << st.datagrams_in << ", out " << st.datagrams_out << ", truncated "
                     << st.dropped_truncated << ", send full " << st.dropped_send_full
                     << ", receive calls " << st.receive_calls << ", send calls "
                     << st.send_calls);
  CHECK(done == kClients);
  CHECK(missing == 0);
  CHECK(foreign == 0);
  CHECK(mismatched == 0);
  CHECK(duplicates == 0);
  CHECK(wrong_source == 0);
  CHECK(send_errors == 0);

  // Nothing more arrives once every client has its datagrams back.
  size_t stray = 0;
  for (auto& c : clients)
    if (::recv(c.s.get(), buf.data(), buf.size(), MSG_DONTWAIT) >= 0) ++stray;
  CHECK(stray == 0);

  const uint64_t total = kClients * kPerClient;
  CHECK(st.datagrams_in == total);
  CHECK(st.datagrams_out == total);
  CHECK(st.bytes_in == total_bytes);
  CHECK(st.bytes_out == total_bytes);
  CHECK(st.dropped_truncated == 0);
  CHECK(st.dropped_send_full == 0);
  CHECK(st.dropped_too_large == 0);
  CHECK(st.receive_calls >= 1);
  CHECK(st.receive_calls <= total);
  CHECK(st.send_calls <= total);
}

}  // namespace

TEST_CASE("UDP echo: 100 clients at once each get exactly their own 20 datagrams back") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    hundred_clients(backend);
  }
}

// ---------------------------------------------------------------------------------------
// Batching

namespace {

// Sends 64 datagrams from 4 clients before the server's loop runs at all, then runs it;
// returns the server's stats once every datagram was echoed.
UdpStats queued_then_served(const std::string& backend, size_t batch) {
  constexpr size_t kClients = 4, kEach = 16;
  UdpOptions opt;
  opt.batch = batch;
  opt.recv_buffer = 1 << 20;
  LocalServer server(backend, [] { return netloop::echo::make_udp_echo_handler(); }, opt);

  std::vector<Sock> clients;
  std::vector<std::set<std::string>> expect(kClients);
  for (size_t i = 0; i < kClients; ++i) clients.push_back(udp_client());
  for (size_t k = 0; k < kEach; ++k) {
    for (size_t i = 0; i < kClients; ++i) {
      std::string m = tagged("client " + std::to_string(i) + " #" + std::to_string(k), 100 + k,
                             i * 100 + k);
      REQUIRE(send_dgram(clients[i].get(), server.address(), m));
      expect[i].insert(m);
    }
  }
  // Loopback delivers within sendto; the pause only makes that certain on a busy machine.
  std::this_thread::sleep_for(50ms);
  const size_t total = kClients * kEach;
  REQUIRE_MESSAGE(server.run_until([&] { return server.stats().datagrams_out >= total; }),
                  "the server echoed " << server.stats().datagrams_out << " of " << total);

  for (size_t i = 0; i < kClients; ++i) {
    CAPTURE(i);
    std::set<std::string> got;
    for (size_t k = 0; k < kEach; ++k) {
      auto d = recv_dgram(clients[i].get(), 1s);
      if (!d) break;
      got.insert(d->data);
    }
    CHECK(got == expect[i]);
    CHECK(nothing_arrives(clients[i].get(), 50ms));
  }
  const UdpStats& st = server.stats();
  CHECK(st.datagrams_in == total);
  CHECK(st.datagrams_out == total);
  CHECK(st.dropped_truncated == 0);
  CHECK(st.dropped_send_full == 0);
  return st;
}

}  // namespace

TEST_CASE("UDP batching: 64 queued datagrams take a few recvmmsg/sendmmsg calls, not 64") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    UdpStats st = queued_then_served(backend, 32);
    MESSAGE("backend " << backend << ", batch 32: " << st.receive_calls << " receive calls, "
                       << st.send_calls << " send calls for 64 datagrams");
    CHECK(st.receive_calls >= 2);  // 64 datagrams cannot fit in one batch of 32
    CHECK(st.receive_calls <= 4);
    CHECK(st.send_calls >= 2);
    CHECK(st.send_calls <= 4);

    // The control: with batch 1 every datagram costs a receive call and a send call, so
    // the counters above count calls, not wake-ups.
    UdpStats one = queued_then_served(backend, 1);
    CHECK(one.receive_calls == 64);
    CHECK(one.send_calls == 64);
  }
}

// ---------------------------------------------------------------------------------------
// Truncation

TEST_CASE("UDP truncation: datagrams above max_datagram are dropped and counted, never cut") {
  for (const auto& backend : usable_backends()) {
    for (size_t batch : {size_t(32), size_t(1)}) {
      CAPTURE(backend);
      CAPTURE(batch);
      UdpServerThread server;
      UdpServerThread::Config cfg;
      cfg.backend = backend;
      cfg.options.max_datagram = 1000;
      cfg.options.batch = batch;
      cfg.options.recv_buffer = 1 << 20;  // the burst below holds a 65,507-byte datagram
      REQUIRE(!server.start(cfg));
      Sock c = udp_client();

      // Exactly the limit: echoed whole.
      const std::string at_limit = tagged("at limit", 1000, 1);
      auto r = round_trip(c.get(), server.address(), at_limit);
      REQUIRE_MESSAGE(r.has_value(), "a 1000-byte datagram was not echoed");
      CHECK(r->data.size() == 1000);
      CHECK(r->data == at_limit);

      // One byte over, and far over: no reply at all (not a 1000-byte piece of them).
      CHECK(send_dgram(c.get(), server.address(), tagged("one over", 1001, 2)));
      CHECK(send_dgram(c.get(), server.address(), tagged("far over", 5000, 3)));
      auto over = recv_dgram(c.get(), 400ms);
      CHECK_MESSAGE(!over.has_value(), "an oversized datagram came back with "
                                           << (over ? over->data.size() : 0) << " bytes");

      // The socket goes on: a small datagram after them is echoed.
      auto small = round_trip(c.get(), server.address(), "small after");
      REQUIRE(small.has_value());
      CHECK(small->data == "small after");

      UdpStats st = server.stats();
      CHECK(st.dropped_truncated == 2);
      CHECK(st.datagrams_in == 2);
      CHECK(st.datagrams_out == 2);
      CHECK(st.bytes_in == 1000 + 11);

      // Mixed in one burst: the oversized ones vanish, their neighbours are echoed.
      const std::vector<std::string> burst = {
          tagged("A", 1000, 4), tagged("B", 1001, 5), "C", tagged("D", 5000, 6),
          tagged("E", 999, 7),  tagged("F", 65507, 8), "G"};
      for (const auto& m : burst) CHECK(send_dgram(c.get(), server.address(), m));
      std::multiset<std::string> got;
      for (int i = 0; i < 4; ++i) {
        auto d = recv_dgram(c.get(), 2s);
        if (!d) break;
        got.insert(d->data);
      }
      CHECK(nothing_arrives(c.get()));
      const std::multiset<std::string> want = {burst[0], burst[2], burst[4], burst[6]};
      CHECK(got == want);
      st = server.stats();
      CHECK(st.dropped_truncated == 5);
      CHECK(st.datagrams_in == 6);
      CHECK(st.datagrams_out == 6);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Peers that vanish

TEST_CASE("UDP: echoes to peers that closed their sockets do not disturb anyone else") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    // The loop runs on the test thread, so each vanished peer's echo is sent only after
    // its socket is closed: it hits a closed port (ICMP port unreachable).
    LocalServer server(backend, [] { return netloop::echo::make_udp_echo_handler(); }, {});
    Sock live = udp_client();
    size_t live_echoed = 0;
    for (int i = 0; i < 50; ++i) {
      CAPTURE(i);
      {
        Sock gone = udp_client();
        REQUIRE(send_dgram(gone.get(), server.address(), "vanishing #" + std::to_string(i)));
      }  // closed before the server has even read it
      REQUIRE(server.run_until([&] { return server.stats().datagrams_in >= uint64_t(2 * i + 1); }));
      // A few more turns: the ICMP error, if the platform reports it, surfaces now.
      for (int k = 0; k < 2; ++k) server.loop->run_once(0);

      const std::string msg = "live #" + std::to_string(i);
      REQUIRE(send_dgram(live.get(), server.address(), msg));
      REQUIRE(server.run_until([&] { return server.stats().datagrams_in >= uint64_t(2 * i + 2); }));
      auto d = recv_dgram(live.get(), 2s);
      REQUIRE_MESSAGE(d.has_value(), "the live client got no echo");
      if (d && d->data == msg) ++live_echoed;
    }
    CHECK(live_echoed == 50);
    CHECK(nothing_arrives(live.get(), 100ms));

    // A fresh client is served too, and the live one still is.
    Sock fresh = udp_client();
    REQUIRE(send_dgram(fresh.get(), server.address(), "fresh"));
    REQUIRE(send_dgram(live.get(), server.address(), "still live"));
    CHECK(server.run_until([&] { return server.stats().datagrams_in >= 102; }));
    auto f = recv_dgram(fresh.get(), 2s);
    auto l = recv_dgram(live.get(), 2s);
    REQUIRE(f.has_value());
    REQUIRE(l.has_value());
    CHECK(f->data == "fresh");
    CHECK(l->data == "still live");

    const UdpStats& st = server.stats();
    MESSAGE("backend " << backend << ": " << st.peer_errors << " peer errors, "
                       << st.datagrams_out << " datagrams out of " << st.datagrams_in);
    CHECK(st.datagrams_in == 102);
    // Every live reply went out; the vanished ones either went out or were counted.
    CHECK(st.datagrams_out + st.peer_errors + st.dropped_send_full >= 102);
    CHECK(st.dropped_truncated == 0);
    CHECK(st.dropped_too_large == 0);

    // One peer sends 50 datagrams interleaved with 50 of the live client's and is gone
    // before the server reads any: its 50 echoes (in the same batches as the live ones)
    // all hit a closed port.
    {
      Sock gone = udp_client();
      for (int i = 0; i < 50; ++i) {
        REQUIRE(send_dgram(gone.get(), server.address(), "gone " + std::to_string(i)));
        REQUIRE(send_dgram(live.get(), server.address(), "burst " + std::to_string(i)));
      }
    }
    CHECK(server.run_until([&] { return server.stats().datagrams_in >= 202; }));
    for (int k = 0; k < 3; ++k) server.loop->run_once(0);
    std::set<std::string> got;
    for (int i = 0; i < 50; ++i) {
      auto d = recv_dgram(live.get(), 2s);
      if (!d) break;
      got.insert(d->data);
    }
    std::set<std::string> want;
    for (int i = 0; i < 50; ++i) want.insert("burst " + std::to_string(i));
    CHECK(got == want);
    // And the server still answers afterwards.
    auto after = [&] {
      REQUIRE(send_dgram(live.get(), server.address(), "after the burst"));
      REQUIRE(server.run_until([&] { return server.stats().datagrams_in >= 203; }));
      return recv_dgram(live.get(), 2s);
    }();
    REQUIRE(after.has_value());
    CHECK(after->data == "after the burst");
    MESSAGE("backend " << backend << " after the burst: " << server.stats().peer_errors
                       << " peer errors");
  }
}

TEST_CASE("UDP: vanished peers interleaved with a live client on a running server") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    UdpServerThread server;
    UdpServerThread::Config cfg;
    cfg.backend = backend;
    REQUIRE(!server.start(cfg));
    Sock live = udp_client();
    size_t ok = 0;
    for (int i = 0; i < 50; ++i) {
      {
        Sock gone = udp_client();
        send_dgram(gone.get(), server.address(), std::string(200, char('a' + i % 26)));
      }
      const std::string msg = tagged("live " + std::to_string(i), 300, uint64_t(i));
      auto d = round_trip(live.get(), server.address(), msg, 2s);
      if (!d || d->data != msg) {
        MESSAGE("live datagram " << i << ": " << (d ? "wrong echo" : "no echo within 2 s"));
        break;  // fail fast: the rest would only wait out their timeouts
      }
      ++ok;
    }
    CHECK(ok == 50);
    CHECK(nothing_arrives(live.get(), 100ms));
    UdpStats st = server.stats();
    CHECK(st.datagrams_in == 100);
    MESSAGE("backend " << backend << ": " << st.peer_errors << " peer errors");
  }
}

// ---------------------------------------------------------------------------------------
// Oversized replies from a handler

namespace {

struct BigSender {
  std::vector<bool> results;  // what each oversized send_to returned
  int timer_fired = 0;
};

// "big": send_to 70,000 bytes (more than any datagram) then echo; "huge": 65,508 bytes
// (one more than IPv4 can carry) then echo; "port 0": a datagram the kernel refuses
// (EINVAL: no one can be sent to port 0) then echo; "timer": the 70,000-byte send from a
// timer, outside any receive batch; anything else: echo.
class BigSenderHandler final : public DatagramHandler {
 public:
  explicit BigSenderHandler(BigSender& j) : j_(j) {}
  void on_datagram(DatagramSocket& sock, std::span<const std::byte> data,
                   const Address& from) override {
    std::string_view v(reinterpret_cast<const char*>(data.data()), data.size());
    if (v == "big") {
      std::string huge(70000, 'x');
      j_.results.push_back(sock.send_to(from, huge));
    } else if (v == "huge") {
      std::string huge(kMaxIpv4Payload + 1, 'y');
      j_.results.push_back(sock.send_to(from, huge));
    } else if (v == "port 0") {
      sock.send_to(Address::ipv4_loopback(0), std::string_view("nobody"));
    } else if (v == "timer") {
      DatagramSocket* s = &sock;
      Address to = from;
      sock.start_timer(1ms, netloop::Duration::zero(), [this, s, to] {
        ++j_.timer_fired;
        std::string huge(70000, 'z');
        j_.results.push_back(s->send_to(to, huge));
        s->send_to(to, std::string_view("from timer"));
      });
    }
    sock.send_to(from, data);
  }

 private:
  BigSender& j_;
};

}  // namespace

TEST_CASE("UDP: a reply larger than a datagram is refused and counted; the socket goes on") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    BigSender j;
    LocalServer server(backend, [&j] { return std::make_unique<BigSenderHandler>(j); }, {});
    Sock c = udp_client();
    auto serve_one = [&](std::string_view msg) {
      uint64_t before = server.stats().datagrams_in;
      REQUIRE(send_dgram(c.get(), server.address(), msg));
      REQUIRE(server.run_until([&] { return server.stats().datagrams_in > before; }));
    };

    serve_one("big");
    REQUIRE(j.results.size() == 1);
    CHECK(j.results[0] == false);
    CHECK(server.stats().dropped_too_large == 1);
    auto d = recv_dgram(c.get(), 2s);
    REQUIRE_MESSAGE(d.has_value(), "the echo after a refused send did not arrive");
    CHECK(d->data == "big");  // not 70,000 bytes, nor any piece of them

    // From a timer: send_to outside a receive batch.
    serve_one("timer");
    auto e = recv_dgram(c.get(), 2s);
    REQUIRE(e.has_value());
    CHECK(e->data == "timer");
    CHECK(server.run_until([&] { return j.timer_fired == 1; }));
    REQUIRE(j.results.size() == 2);
    CHECK(j.results[1] == false);
    CHECK(server.stats().dropped_too_large == 2);
    auto t = recv_dgram(c.get(), 2s);
    REQUIRE(t.has_value());
    CHECK(t->data == "from timer");

    // 65,508 bytes to an IPv4 peer: refused and counted as too large; the echo queued
    // after it still goes out.
    serve_one("huge");
    REQUIRE(j.results.size() == 3);
    CHECK(j.results[2] == false);
    CHECK(server.stats().dropped_too_large == 3);
    auto h = recv_dgram(c.get(), 2s);
    REQUIRE(h.has_value());
    CHECK(h->data == "huge");

    // A datagram the kernel refuses when the batch is sent (port 0: EINVAL) is dropped and
    // counted; the echo after it in the same sendmmsg batch still goes out.
    const UdpStats before = server.stats();
    serve_one("port 0");
    auto z = recv_dgram(c.get(), 2s);
    REQUIRE_MESSAGE(z.has_value(), "the echo after a refused datagram in the same batch was lost");
    CHECK(z->data == "port 0");
    const UdpStats& after = server.stats();
    CHECK(after.datagrams_out == before.datagrams_out + 1);
    CHECK(after.dropped_send_error == before.dropped_send_error + 1);  // EINVAL, not "full"
    CHECK(after.dropped_send_full == before.dropped_send_full);

    // And plain echo goes on.
    serve_one("plain");
    auto p = recv_dgram(c.get(), 2s);
    REQUIRE(p.has_value());
    CHECK(p->data == "plain");
    CHECK(nothing_arrives(c.get(), 100ms));

    const UdpStats& st = server.stats();
    CHECK(st.datagrams_in == 5);
    CHECK(st.datagrams_out == 6);  // five echoes and "from timer"
    CHECK(st.dropped_too_large == 3);
  }
}

// ---------------------------------------------------------------------------------------
// Timers and lifetime

TEST_CASE("UDP: timers started through the socket die with it") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto fired = std::make_shared<int>(0);
    class TimerHandler final : public DatagramHandler {
     public:
      explicit TimerHandler(std::shared_ptr<int> f) : f_(std::move(f)) {}
      void on_datagram(DatagramSocket& sock, std::span<const std::byte>, const Address&) override {
        auto f = f_;
        sock.start_timer(30ms, netloop::Duration::zero(), [f] { ++*f; });
        sock.start_timer(30ms, 30ms, [f] { ++*f; });
      }

     private:
      std::shared_ptr<int> f_;
    };
    std::string why;
    auto l = netloop::EventLoop::create(backend, &why);
    REQUIRE_MESSAGE(l.ok(), why);
    auto& loop = **l;
    auto s = UdpSocket::bind(loop, Address::ipv4_loopback(0),
                             std::make_unique<TimerHandler>(fired));
    REQUIRE(s.ok());
    std::unique_ptr<UdpSocket> sock = std::move(*s);
    Sock c = udp_client();
    REQUIRE(send_dgram(c.get(), sock->local_address(), "start timers"));
    auto t0 = SteadyClock::now();
    while (sock->stats().datagrams_in == 0 && SteadyClock::now() - t0 < 5s) loop.run_once(20);
    REQUIRE(sock->stats().datagrams_in == 1);
    sock.reset();  // the timers are still pending
    auto t1 = SteadyClock::now();
    while (SteadyClock::now() - t1 < 150ms) loop.run_once(20);
    CHECK(*fired == 0);
  }
}

// ---------------------------------------------------------------------------------------
// Bind errors

TEST_CASE("UDP bind: a port in use fails with EADDRINUSE; a closed socket frees its port") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    std::string why;
    auto l = netloop::EventLoop::create(backend, &why);
    REQUIRE_MESSAGE(l.ok(), why);
    auto& loop = **l;
    auto echo = [] { return netloop::echo::make_udp_echo_handler(); };

    auto first = UdpSocket::bind(loop, Address::ipv4_loopback(0), echo());
    REQUIRE(first.ok());
    const Address taken = (*first)->local_address();
    REQUIRE(taken.port() != 0);

    auto second = UdpSocket::bind(loop, taken, echo());
    REQUIRE_FALSE(second.ok());
    CHECK(second.error() == std::errc::address_in_use);
    CHECK(second.error().value() == EADDRINUSE);

    // A port held by someone else's socket: the same.
    Sock other = udp_client();
    auto third = UdpSocket::bind(loop, local_of(other.get()), echo());
    REQUIRE_FALSE(third.ok());
    CHECK(third.error() == std::errc::address_in_use);

    // The first socket still works after the failed attempts.
    Sock c = udp_client();
    REQUIRE(send_dgram(c.get(), taken, "still bound"));
    auto t0 = SteadyClock::now();
    while ((*first)->stats().datagrams_out == 0 && SteadyClock::now() - t0 < 5s)
      loop.run_once(20);
    auto d = recv_dgram(c.get(), 2s);
    REQUIRE(d.has_value());
    CHECK(d->data == "still bound");

    // Destroying it releases the descriptor: the port can be bound again.
    (*first).reset();
    auto again = UdpSocket::bind(loop, taken, echo());
    CHECK_MESSAGE(again.ok(), "rebinding a released port: " << again.error().message());

    // Options that cannot work are refused up front.
    UdpOptions zero_batch;
    zero_batch.batch = 0;
    auto zb = UdpSocket::bind(loop, Address::ipv4_loopback(0), echo(), zero_batch);
    REQUIRE_FALSE(zb.ok());
    CHECK(zb.error() == std::errc::invalid_argument);
    UdpOptions zero_size;
    zero_size.max_datagram = 0;
    auto zs = UdpSocket::bind(loop, Address::ipv4_loopback(0), echo(), zero_size);
    REQUIRE_FALSE(zs.ok());
    CHECK(zs.error() == std::errc::invalid_argument);
    // Past what recvmmsg/sendmmsg take per call (1024) or what a datagram can be (65535).
    UdpOptions big_batch;
    big_batch.batch = 1025;
    big_batch.max_datagram = 1000;
    auto bb = UdpSocket::bind(loop, Address::ipv4_loopback(0), echo(), big_batch);
    REQUIRE_FALSE(bb.ok());
    CHECK(bb.error() == std::errc::invalid_argument);
    UdpOptions big_size;
    big_size.max_datagram = 65536;
    auto bs = UdpSocket::bind(loop, Address::ipv4_loopback(0), echo(), big_size);
    REQUIRE_FALSE(bs.ok());
    CHECK(bs.error() == std::errc::invalid_argument);
    // The edges themselves are fine.
    UdpOptions edges;
    edges.batch = 1024;
    edges.max_datagram = 1000;
    CHECK(UdpSocket::bind(loop, Address::ipv4_loopback(0), echo(), edges).ok());
    edges.batch = 1;
    edges.max_datagram = 65535;
    CHECK(UdpSocket::bind(loop, Address::ipv4_loopback(0), echo(), edges).ok());
  }
}

TEST_CASE("UDP bind: [::1] port in use fails with EADDRINUSE too") {
  std::string why;
  if (!ipv6_udp_loopback(why)) {
    MESSAGE("skipped: ::1 cannot be bound here (" << why << ")");
    return;
  }
  auto l = netloop::EventLoop::create({}, &why);
  REQUIRE_MESSAGE(l.ok(), why);
  auto first = UdpSocket::bind(**l, Address::ipv6_loopback(0), netloop::echo::make_udp_echo_handler());
  REQUIRE(first.ok());
  auto second = UdpSocket::bind(**l, (*first)->local_address(), netloop::echo::make_udp_echo_handler());
  REQUIRE_FALSE(second.ok());
  CHECK(second.error() == std::errc::address_in_use);
}

// ---------------------------------------------------------------------------------------
// Contract edges: what send_to returns, and options that cannot serve

namespace {

// The largest UDP payload to a peer of this family.
size_t max_payload(const Address& a) { return a.is_ipv6() ? 65527 : kMaxIpv4Payload; }

// Echoes, then: "max": send_to exactly the largest payload for the sender's family; "in
// batch": one byte more, while handling a receive; "timer": one byte more from a timer,
// outside any receive batch. Records what each of those send_to calls returned.
struct EdgeJournal {
  std::vector<std::pair<std::string, bool>> results;
};

class EdgeSender final : public DatagramHandler {
 public:
  explicit EdgeSender(EdgeJournal& j) : j_(j) {}
  void on_datagram(DatagramSocket& sock, std::span<const std::byte> data,
                   const Address& from) override {
    sock.send_to(from, data);
    std::string_view v(reinterpret_cast<const char*>(data.data()), data.size());
    const size_t max = max_payload(from);
    if (v == "max") {
      j_.results.emplace_back("max", sock.send_to(from, std::string(max, 'm')));
    } else if (v == "in batch") {
      j_.results.emplace_back("in batch", sock.send_to(from, std::string(max + 1, 'b')));
    } else if (v == "timer") {
      DatagramSocket* s = &sock;
      Address to = from;
      sock.start_timer(1ms, netloop::Duration::zero(), [this, s, to, max] {
        j_.results.emplace_back("timer", s->send_to(to, std::string(max + 1, 't')));
      });
    }
  }

 private:
  EdgeJournal& j_;
};

void send_to_limits(const std::string& backend, const Address& bind_to) {
  EdgeJournal j;
  LocalServer server(backend, [&j] { return std::make_unique<EdgeSender>(j); }, {}, bind_to);
  Sock c = udp_client(bind_to.family());
  const size_t max = max_payload(bind_to);
  CAPTURE(max);
  auto serve_one = [&](std::string_view msg) {
    uint64_t before = server.stats().datagrams_in;
    REQUIRE(send_dgram(c.get(), server.address(), msg));
    REQUIRE(server.run_until([&] { return server.stats().datagrams_in > before; }));
    auto echo = recv_dgram(c.get(), 2s);
    REQUIRE_MESSAGE(echo.has_value(), "no echo of '" << msg << "'");
    CHECK(echo->data == msg);
  };

  // Exactly the family's maximum goes out and arrives whole.
  serve_one("max");
  auto m = recv_dgram(c.get(), 2s);
  REQUIRE_MESSAGE(m.has_value(), "a " << max << "-byte datagram from the handler did not arrive");
  CHECK(m->data.size() == max);
  CHECK(diff_bytes(m->data, std::string(max, 'm')) == "");

  // One byte more is refused at once, in a receive batch and from a timer alike.
  serve_one("in batch");
  serve_one("timer");
  CHECK(server.run_until([&] { return j.results.size() == 3; }));
  CHECK(nothing_arrives(c.get(), 100ms));  // nothing of them arrived
  REQUIRE(j.results.size() == 3);
  CHECK(j.results[0] == std::pair<std::string, bool>("max", true));
  CHECK(j.results[1] == std::pair<std::string, bool>("in batch", false));
  CHECK(j.results[2] == std::pair<std::string, bool>("timer", false));

  const UdpStats& st = server.stats();
  CHECK(st.dropped_too_large == 2);
  CHECK(st.dropped_send_full == 0);
  CHECK(st.datagrams_in == 3);
  CHECK(st.datagrams_out == 4);  // three echoes and the maximal datagram
  CHECK(st.bytes_out == max + 3 + 8 + 5);
}

}  // namespace

// DatagramSocket::send_to: "Returns false when it is refused at once (larger than a UDP
// datagram can be: 65,507 bytes over IPv4, 65,527 over IPv6)".
TEST_CASE("UDP send_to: one byte over the family's largest datagram returns false (IPv4)") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    send_to_limits(backend, Address::ipv4_loopback(0));
  }
}

TEST_CASE("UDP send_to: one byte over the family's largest datagram returns false (IPv6)") {
  std::string why;
  if (!ipv6_udp_loopback(why)) {
    MESSAGE("skipped: ::1 cannot be bound here (" << why << ")");
    return;
  }
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    send_to_limits(backend, Address::ipv6_loopback(0));
  }
}

// UdpOptions::batches_per_wakeup = 0 would make on_readable read nothing, ever, while the
// (level-triggered) loop keeps reporting the socket readable: a busy loop that serves no
// one. bind must refuse it (EINVAL, as for batch = 0) or serve anyway.
TEST_CASE("UDP bind: batches_per_wakeup = 0 is refused or still serves") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    std::string why;
    auto l = netloop::EventLoop::create(backend, &why);
    REQUIRE_MESSAGE(l.ok(), why);
    auto& loop = **l;
    UdpOptions opt;
    opt.batches_per_wakeup = 0;
    auto s = UdpSocket::bind(loop, Address::ipv4_loopback(0),
                             netloop::echo::make_udp_echo_handler(), opt);
    if (!s.ok()) {
      CHECK(s.error() == std::errc::invalid_argument);
      continue;
    }
    Sock c = udp_client();
    REQUIRE(send_dgram(c.get(), (*s)->local_address(), "anyone there?"));
    const uint64_t iterations_before = loop.iterations();
    auto t0 = SteadyClock::now();
    while ((*s)->stats().datagrams_out == 0 && SteadyClock::now() - t0 < 1s) loop.run_once(20);
    const uint64_t spins = loop.iterations() - iterations_before;
    CHECK_MESSAGE((*s)->stats().datagrams_in == 1,
                  "bind accepted batches_per_wakeup = 0 but the socket never reads ("
                      << spins << " loop iterations in 1 s: the loop spins)");
    auto d = recv_dgram(c.get(), 500ms);
    CHECK(d.has_value());
  }
}

// ---------------------------------------------------------------------------------------
// By completion (io_uring datagram channels)

namespace {

// The io_uring backend, when this build and kernel have it ("" otherwise).
std::string uring_backend() {
  for (const auto& b : usable_backends())
    if (b == "io_uring") return b;
  return {};
}

// Replies `copies` times to every datagram, each copy tagged with its number.
class FanOutHandler final : public DatagramHandler {
 public:
  explicit FanOutHandler(size_t copies) : copies_(copies) {}
  void on_datagram(DatagramSocket& sock, std::span<const std::byte> data,
                   const Address& from) override {
    std::string base(reinterpret_cast<const char*>(data.data()), data.size());
    for (size_t i = 0; i < copies_; ++i) sock.send_to(from, base + " " + std::to_string(i));
  }

 private:
  size_t copies_;
};

}  // namespace

TEST_CASE("UDP by completion: io_uring serves a socket by completion, the others by readiness") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    for (bool completion : {true, false}) {
      CAPTURE(completion);
      UdpOptions opt;
      opt.completion = completion;
      LocalServer server(backend, [] { return netloop::echo::make_udp_echo_handler(); }, opt);
      CHECK(server.socket->uses_completion() == (completion && backend == "io_uring"));
      Sock c = udp_client();
      REQUIRE(send_dgram(c.get(), server.address(), "which way"));
      REQUIRE(server.run_until([&] { return server.stats().datagrams_out == 1; }));
      auto d = recv_dgram(c.get(), 2s);
      REQUIRE(d.has_value());
      CHECK(d->data == "which way");
    }
    // Readiness backends have no completion I/O, so no channels, to offer.
    std::string why;
    auto loop = netloop::EventLoop::create(backend, &why);
    REQUIRE_MESSAGE(loop.ok(), why);
    CHECK(((*loop)->completion() != nullptr) == (backend == "io_uring"));
  }
}

TEST_CASE("UDP by completion: bad channel options are refused") {
  const std::string backend = uring_backend();
  if (backend.empty()) return;  // nothing to refuse
  std::string why;
  auto l = netloop::EventLoop::create(backend, &why);
  REQUIRE_MESSAGE(l.ok(), why);
  for (size_t n : {size_t(0), size_t(1), size_t(3), size_t(100), size_t(65536)}) {
    CAPTURE(n);
    UdpOptions opt;
    opt.completion_buffers = n;
    auto s = UdpSocket::bind(**l, Address::ipv4_loopback(0),
                             netloop::echo::make_udp_echo_handler(), opt);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() == std::errc::invalid_argument);
  }
}

TEST_CASE("UDP by completion: a ring of 2 buffers running dry loses nothing") {
  // 300 datagrams wait in the socket before the loop runs: the multishot receive takes
  // 2, runs out of buffers (ENOBUFS) and must be queued again after each batch.
  const std::string backend = uring_backend();
  if (backend.empty()) {
    MESSAGE("io_uring is not available here: nothing to test");
    return;
  }
  for (size_t batch : {size_t(32), size_t(1)}) {
    CAPTURE(batch);
    UdpOptions opt;
    opt.completion_buffers = 2;
    opt.batch = batch;
    opt.recv_buffer = 4 << 20;
    LocalServer server(backend, [] { return netloop::echo::make_udp_echo_handler(); }, opt);
    REQUIRE(server.socket->uses_completion());
    Sock c = udp_client(AF_INET, 4 << 20);
    constexpr size_t kCount = 300;
    std::set<std::string> sent;
    for (size_t i = 0; i < kCount; ++i) {
      std::string m = tagged("dry #" + std::to_string(i), 200 + i % 50, i);
      REQUIRE(send_dgram(c.get(), server.address(), m));
      sent.insert(m);
    }
    REQUIRE_MESSAGE(server.run_until([&] { return server.stats().datagrams_out == kCount; }),
                    "echoed " << server.stats().datagrams_out << " of " << kCount);
    std::set<std::string> got;
    for (size_t i = 0; i < kCount; ++i) {
      auto d = recv_dgram(c.get(), 2s);
      if (!d) break;
      got.insert(d->data);
    }
    CHECK(got == sent);
    CHECK(nothing_arrives(c.get(), 50ms));
    CHECK(server.stats().datagrams_in == kCount);
    CHECK(server.stats().dropped_send_full == 0);
  }
}

TEST_CASE("UDP by completion: more replies than the channel holds in flight all go out") {
  // 600 replies to one datagram: more than the channel's 256 send slots, so the channel
  // hands its sends to the kernel early and takes their slots back, mid-batch.
  const std::string backend = uring_backend();
  if (backend.empty()) {
    MESSAGE("io_uring is not available here: nothing to test");
    return;
  }
  constexpr size_t kCopies = 600;
  UdpOptions opt;
  opt.send_buffer = 4 << 20;
  LocalServer server(
      backend, [] { return std::unique_ptr<DatagramHandler>(new FanOutHandler(kCopies)); }, opt);
  REQUIRE(server.socket->uses_completion());
  Sock c = udp_client(AF_INET, 8 << 20);
  REQUIRE(send_dgram(c.get(), server.address(), "fan"));
  REQUIRE_MESSAGE(server.run_until([&] { return server.stats().datagrams_out == kCopies; }),
                  "sent " << server.stats().datagrams_out << " of " << kCopies << ", "
                          << server.stats().dropped_send_full << " dropped as full");
  std::set<std::string> got;
  for (size_t i = 0; i < kCopies; ++i) {
    auto d = recv_dgram(c.get(), 2s);
    if (!d) break;
    got.insert(d->data);
  }
  CHECK(got.size() == kCopies);
  for (size_t i = 0; i < kCopies; ++i) CHECK(got.count("fan " + std::to_string(i)) == 1);
  CHECK(server.stats().dropped_send_full == 0);
  CHECK(server.stats().dropped_send_error == 0);
}

TEST_CASE("UDP by completion: closing a socket with datagrams and replies in flight") {
  // The socket goes while the kernel holds its buffers, datagrams are waiting in them and
  // replies are queued: its port is free at once, its queued replies still went out, and
  // nothing touches its memory afterwards (AddressSanitizer watches that in CI).
  const std::string backend = uring_backend();
  if (backend.empty()) {
    MESSAGE("io_uring is not available here: nothing to test");
    return;
  }
  std::string why;
  auto l = netloop::EventLoop::create(backend, &why);
  REQUIRE_MESSAGE(l.ok(), why);
  auto& loop = **l;
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    UdpOptions opt;
    opt.batch = 1;  // one datagram per report: the rest wait in their buffers
    opt.completion_buffers = 4;
    auto s = UdpSocket::bind(loop, Address::ipv4_loopback(0),
                             netloop::echo::make_udp_echo_handler(), opt);
    REQUIRE(s.ok());
    REQUIRE((*s)->uses_completion());
    const Address at = (*s)->local_address();
    Sock c = udp_client();
    for (int i = 0; i < 10; ++i) REQUIRE(send_dgram(c.get(), at, "in flight " + std::to_string(i)));
    // Until the first datagram is handled: its reply is queued, the others sit in buffers
    // or in the socket.
    auto t0 = SteadyClock::now();
    while ((*s)->stats().datagrams_in == 0 && SteadyClock::now() - t0 < 2s) loop.run_once(20);
    REQUIRE((*s)->stats().datagrams_in >= 1);
    const uint64_t handled = (*s)->stats().datagrams_in;
    // settle(): the queued replies go now and are counted, as a Server does before it
    // takes a retiring socket's totals.
    (*s)->settle();
    CHECK((*s)->stats().datagrams_out == handled);
    s->reset();
    // The replies of the datagrams handled went out with the close.
    for (uint64_t i = 0; i < handled; ++i) {
      auto d = recv_dgram(c.get(), 1s);
      REQUIRE_MESSAGE(d.has_value(), "reply " << i << " of " << handled << " was lost with the close");
    }
    // The port is free again: nothing in the kernel holds the socket.
    Sock again(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(again.valid());
    CHECK_MESSAGE(::bind(again.get(), at.sockaddr_ptr(), at.length()) == 0,
                  "port " << at.port() << " still taken: " << std::strerror(errno));
    loop.run_once(0);  // stale completions of the closed channel are ignored
  }
}

// ---------------------------------------------------------------------------------------
// The handler's life: on_open, on_drain, on_close

namespace {

// Writes down every call and what the socket said at that moment. on_open greets `greet`
// (when set), on_datagram echoes, on_close tries one more send (which must be refused).
struct LifeRecorder final : DatagramHandler {
  LifeRecorder(std::shared_ptr<std::vector<std::string>> log, std::optional<Address> greet)
      : log(std::move(log)), greet(greet) {}

  void on_open(DatagramSocket& s) override {
    std::string line = s.is_open() ? "open" : "open (not open?)";
    if (greet) {
      const bool taken = s.send_to(*greet, "hello");
      line += taken ? "" : " (hello refused?)";
      if (s.output_full()) line += ", output full";
    }
    log->push_back(line);
  }
  void on_datagram(DatagramSocket& s, std::span<const std::byte> data, const Address& from) override {
    log->push_back("datagram " + std::string(reinterpret_cast<const char*>(data.data()), data.size()));
    s.send_to(from, data);
  }
  void on_drain(DatagramSocket& s) override {
    log->push_back(s.output_full() ? "drain (still full?)" : "drain");
  }
  void on_close(DatagramSocket& s, const netloop::CloseInfo& info) override {
    std::string line = "close " + std::string(netloop::to_string(info.reason));
    if (info.error) line += " " + info.error.message();
    if (s.is_open()) line += " (still open?)";
    if (greet && s.send_to(*greet, "after close")) line += " (sent after close?)";
    log->push_back(line);
  }

  std::shared_ptr<std::vector<std::string>> log;
  std::optional<Address> greet;
};

using Log = std::vector<std::string>;

}  // namespace

TEST_CASE("UDP handler life: on_open when bound, on_close(shutdown) when the socket goes; every backend, readiness and completion") {
  for (const auto& backend : usable_backends()) {
    for (bool completion : {false, true}) {
      CAPTURE(backend);
      CAPTURE(completion);
      auto log = std::make_shared<Log>();
      Sock c = udp_client();
      const Address client = local_of(c.get());
      UdpOptions opt;
      opt.completion = completion;
      {
        LocalServer server(backend, [&] { return std::make_unique<LifeRecorder>(log, client); }, opt);
        CHECK(server.socket->is_open());
        CHECK(*log == Log{"open"});  // before bind() returned
        // on_open's greeting goes out (by completion: with the loop's next wait).
        server.run_until([] { return true; });
        auto hello = recv_dgram(c.get(), 2s);
        REQUIRE_MESSAGE(hello.has_value(), "the greeting sent from on_open never arrived");
        CHECK(hello->data == "hello");
        CHECK(hello->from == server.address());

        REQUIRE(send_dgram(c.get(), server.address(), "ping"));
        REQUIRE(server.run_until([&] { return server.stats().datagrams_out == 2; }));
        auto echoed = recv_dgram(c.get(), 2s);
        REQUIRE(echoed.has_value());
        CHECK(echoed->data == "ping");

        // The socket's timers: cancel_timer says whether the timer was still pending.
        auto& s = *server.socket;
        bool fired = false;
        netloop::TimerId later = s.start_timer(1h, netloop::Duration::zero(), [] {});
        netloop::TimerId soon = s.start_timer(1ms, netloop::Duration::zero(), [&] { fired = true; });
        CHECK(s.cancel_timer(later));
        CHECK_FALSE(s.cancel_timer(later));
        REQUIRE(server.run_until([&] { return fired; }));
        CHECK_FALSE(s.cancel_timer(soon));
        CHECK(log->size() == 2);  // nothing but open and the datagram so far: no on_drain
      }  // the socket goes
      CHECK(*log == Log{"open", "datagram ping", "close shutdown"});
      CHECK(nothing_arrives(c.get(), 50ms));  // not even the send tried in on_close
    }
  }
}

TEST_CASE("UDP handler life: a send the kernel refuses sets output_full, on_drain follows once the socket is writable; every backend by readiness") {
  // Loopback never pushes back on UDP (a datagram's memory is given back to its sender as
  // it is delivered), so a seccomp filter on the loop's own thread makes every sendto fail
  // with EAGAIN, as a full send buffer does. The writability that ends it is the kernel's.
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    Sock c = udp_client();
    const Address client = local_of(c.get());
    struct Outcome {
      std::string setup_error;  // the filter, the loop or the bind failed
      Log log;
      uint64_t dropped = 0;
      bool drained = false;
      uint64_t idle_iterations = 0;  // loop iterations in 300 ms after on_drain
    } out;
    std::thread loop_thread([&] {
      if (!nltest::refuse_syscall(__NR_sendto, EAGAIN)) {
        out.setup_error = std::string("seccomp filter: ") + std::strerror(errno);
        return;
      }
      std::string why;
      auto l = netloop::EventLoop::create(backend, &why);
      if (!l) {
        out.setup_error = "loop: " + why;
        return;
      }
      auto log = std::make_shared<Log>();
      UdpOptions opt;
      opt.completion = false;  // by completion the sends would not go through sendto
      auto s = UdpSocket::bind(**l, Address::ipv4_loopback(0),
                               std::make_unique<LifeRecorder>(log, client), opt);
      if (!s) {
        out.setup_error = "bind: " + s.error().message();
        return;
      }
      auto deadline = SteadyClock::now() + 5s;
      while (log->size() < 2 && SteadyClock::now() < deadline) (*l)->run_once(20);
      out.drained = log->size() >= 2;
      // Write interest must be gone again: a loop that still asked for it would wake at
      // once on every wait (UDP sockets are nearly always writable) instead of sleeping.
      const uint64_t before = (*l)->iterations();
      deadline = SteadyClock::now() + 300ms;
      while (SteadyClock::now() < deadline) (*l)->run_once(100);
      out.idle_iterations = (*l)->iterations() - before;
      out.dropped = (*s)->stats().dropped_send_full;
      s->reset();
      out.log = *log;
    });
    loop_thread.join();
    REQUIRE_MESSAGE(out.setup_error.empty(), out.setup_error);
    CHECK(out.drained);
    CHECK(out.log == Log{"open, output full", "drain", "close shutdown"});
    CHECK(out.dropped == 1);
    CHECK_MESSAGE(out.idle_iterations < 20, out.idle_iterations << " iterations in 300 ms idle");
    CHECK(nothing_arrives(c.get(), 50ms));  // the refused greeting never went out
  }
}
