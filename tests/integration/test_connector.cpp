// Connector over real loopback sockets: connecting by address and by name, refused,
// timed out, name not found, Happy Eyeballs fallback both ways, cancel while resolving and
// while connecting, reconnecting, a local address, and the connector's own tear-down.
// The client and the listeners share one loop, run on the test's thread.
#include "support.hpp"

#include <map>

#include "netloop/connector.hpp"

using namespace nltest;
using namespace netloop;

namespace {

// What a client handler heard.
struct Heard {
  int opens = 0;
  int closes = 0;
  bool destroyed = false;
  CloseInfo info{CloseReason::local, {}};
  Address peer, local, failed_peer;
  std::string echoed;
};

class Client final : public StreamHandler {
 public:
  Client(Heard& h, std::string send = "hello") : h_(h), send_(std::move(send)) {}
  ~Client() override { h_.destroyed = true; }
  void on_open(Connection& c) override {
    ++h_.opens;
    h_.peer = c.peer_address();
    h_.local = c.local_address();
    if (!send_.empty()) c.send(send_);
  }
  void on_data(Connection& c, Buffer& in) override {
    h_.echoed.append(in.view());
    in.consume(in.size());
    if (h_.echoed.size() >= send_.size()) c.close();
  }
  void on_close(Connection& c, const CloseInfo& info) override {
    ++h_.closes;
    h_.info = info;
    if (info.reason == CloseReason::connect_failed) h_.failed_peer = c.peer_address();
  }

 private:
  Heard& h_;
  std::string send_;
};

// An echo listener on `addr` in `loop`.
std::unique_ptr<TcpListener> echo_listener(EventLoop& loop, const Address& addr) {
  auto l = TcpListener::listen(loop, addr, [] { return std::make_unique<echo::TcpEchoHandler>(); });
  REQUIRE_MESSAGE(l, l.error().message());
  return std::move(*l);
}

// A port on `family`'s loopback that nothing listens on (bound, then closed).
uint16_t closed_port(bool v6 = false) {
  Sock s(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0));
  Address a = v6 ? Address::ipv6_loopback(0) : Address::ipv4_loopback(0);
  REQUIRE(::bind(s.get(), a.sockaddr_ptr(), a.length()) == 0);
  return Address::local_of(s.get(), a).port();
}

bool ipv6_loopback_usable() {
  Sock s(::socket(AF_INET6, SOCK_STREAM, 0));
  Address a = Address::ipv6_loopback(0);
  return s.valid() && ::bind(s.get(), a.sockaddr_ptr(), a.length()) == 0;
}

// A listener that never accepts, its backlog filled: a connect to it gets no answer
// (the kernel drops the SYN), which is how a connect timeout is made on loopback.
struct BlackHole {
  Sock listener;
  std::vector<Sock> fillers;
  Address address;
  explicit BlackHole(bool v6 = false) {
    listener = Sock(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0));
    Address a = v6 ? Address::ipv6_loopback(0) : Address::ipv4_loopback(0);
    REQUIRE(::bind(listener.get(), a.sockaddr_ptr(), a.length()) == 0);
    REQUIRE(::listen(listener.get(), 0) == 0);
    address = Address::local_of(listener.get(), a);
    // Backlog 0 holds one finished handshake; a few more make sure the queue is full.
    for (int i = 0; i < 3; ++i) {
      Sock c(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK, 0));
      ::connect(c.get(), address.sockaddr_ptr(), address.length());
      fillers.push_back(std::move(c));
    }
    std::this_thread::sleep_for(50ms);
  }
};

// A lookup that answers from a table instead of getaddrinfo (names the tests invent
// must never reach a real name server).
LookupFunction table_lookup(std::map<std::string, std::vector<Address>> table) {
  return [table](const std::string& host, uint16_t port) -> Result<Addresses> {
    auto it = table.find(host);
    if (it == table.end()) return make_error(ResolveErrc::name_not_found);
    Addresses out = it->second;
    for (auto& a : out) a.set_port(port);
    return out;
  };
}

}  // namespace

TEST_CASE("connector: connects by address on every backend and drives the handler") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto loop = make_loop(backend);
    auto server = echo_listener(*loop, Address::ipv4_loopback(0));
    Heard h;
    Connector connector(*loop);
    connector.connect(server->local_address(), std::make_unique<Client>(h, "ping through"));
    CHECK(h.opens == 0);  // never inside the call
    REQUIRE(run_until(*loop, [&] { return h.closes == 1; }));
    CHECK(h.opens == 1);
    CHECK(h.echoed == "ping through");
    CHECK(h.info.reason == CloseReason::local);
    CHECK(h.peer == server->local_address());
    CHECK(h.local.family() == AF_INET);
    CHECK(connector.stats().connected.get() == 1);
    CHECK(connector.connection_count() == 0);
    CHECK(connector.pending_count() == 0);
  }
}

TEST_CASE("connector: connects by name through /etc/hosts (localhost)") {
  auto loop = make_loop();
  auto server = echo_listener(*loop, Address::ipv4_loopback(0));
  Heard h;
  Connector connector(*loop);
  // Only IPv4 listens: if the hosts file also maps localhost to ::1, that attempt is
  // refused and the IPv4 one follows at once.
  connector.connect("localhost", server->local_address().port(), std::make_unique<Client>(h));
  REQUIRE(run_until(*loop, [&] { return h.closes == 1; }));
  CHECK(h.opens == 1);
  CHECK(h.echoed == "hello");
  CHECK(h.peer == server->local_address());
}

TEST_CASE("connector: IPv6 by address") {
  if (!ipv6_loopback_usable()) {
    MESSAGE("::1 is not usable here; skipped");
    return;
  }
  auto loop = make_loop();
  auto server = echo_listener(*loop, Address::ipv6_loopback(0));
  Heard h;
  Connector connector(*loop);
  connector.connect("::1", server->local_address().port(), std::make_unique<Client>(h));
  REQUIRE(run_until(*loop, [&] { return h.closes == 1; }));
  CHECK(h.opens == 1);
  CHECK(h.peer.is_ipv6());
  CHECK(h.echoed == "hello");
}

TEST_CASE("connector: a refused connect is on_close(connect_failed, connection_refused) alone") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto loop = make_loop(backend);
    Heard h;
    Connector connector(*loop);
    uint16_t port = closed_port();
    connector.connect(Address::ipv4_loopback(port), std::make_unique<Client>(h));
    REQUIRE(run_until(*loop, [&] { return h.closes == 1; }));
    CHECK(h.opens == 0);
    CHECK(h.info.reason == CloseReason::connect_failed);
    CHECK(h.info.error == std::errc::connection_refused);
    CHECK(h.info.text.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
    CHECK(h.failed_peer == Address::ipv4_loopback(port));
    CHECK(h.destroyed);
    CHECK(connector.stats().failed.get() == 1);
    CHECK(connector.pending_count() == 0);
  }
}

TEST_CASE("connector: a connect nobody answers times out") {
  BlackHole hole;
  auto loop = make_loop();
  Heard h;
  Connector connector(*loop);
  netloop::ConnectOptions o;
  o.timeout = 300ms;
  auto t0 = SteadyClock::now();
  connector.connect(hole.address, std::make_unique<Client>(h), o);
  REQUIRE(run_until(*loop, [&] { return h.closes == 1; }));
  auto took = SteadyClock::now() - t0;
  CHECK(h.opens == 0);
  CHECK(h.info.reason == CloseReason::connect_failed);
  CHECK(h.info.error == std::errc::timed_out);
  CHECK(took >= 280ms);
  CHECK(took < 3s);
}

TEST_CASE("connector: a name that does not resolve") {
  auto loop = make_loop();
  ConnectorOptions co;
  co.resolver.lookup = table_lookup({});
  Heard h;
  Connector connector(*loop, co);
  connector.connect("nosuch.test", 80, std::make_unique<Client>(h));
  REQUIRE(run_until(*loop, [&] { return h.closes == 1; }));
  CHECK(h.opens == 0);
  CHECK(h.info.reason == CloseReason::connect_failed);
  CHECK(h.info.error == ResolveErrc::name_not_found);
  CHECK(h.info.text.find("nosuch.test:80") != std::string::npos);
  CHECK(h.info.text.find("name not found") != std::string::npos);

  SUBCASE("and an empty one, through the system resolver") {
    Connector sys(*loop);
    Heard e;
    sys.connect("", 80, std::make_unique<Client>(e));
    REQUIRE(run_until(*loop, [&] { return e.closes == 1; }));
    CHECK(e.info.error == ResolveErrc::bad_name);
  }
}

TEST_CASE("connector: a lookup that takes too long times out and its late answer is dropped") {
  auto loop = make_loop();
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  ConnectorOptions co;
  co.resolver.lookup = [gate](const std::string&, uint16_t port) -> Result<Addresses> {
    gate.wait();
    return Addresses{Address::ipv4_loopback(port)};
  };
  Heard h;
  Connector connector(*loop, co);
  netloop::ConnectOptions o;
  o.timeout = 200ms;
  connector.connect("slow.test", 9, std::make_unique<Client>(h), o);
  REQUIRE(run_until(*loop, [&] { return h.closes == 1; }));
  CHECK(h.info.error == std::errc::timed_out);
  CHECK(h.info.text.find("resolving") != std::string::npos);
  release.set_value();
  run_until(*loop, [] { return false; }, 100ms);
  CHECK(h.closes == 1);
  CHECK(h.opens == 0);
}

TEST_CASE("connector: Happy Eyeballs: IPv6 refused falls back to IPv4 at once") {
  auto loop = make_loop();
  auto server = echo_listener(*loop, Address::ipv4_loopback(0));
  uint16_t port = server->local_address().port();
  ConnectorOptions co;
  // Both families under one name, IPv6 first; nothing listens on [::1]:port (or ::1 is
  // not there at all, which fails at once just the same).
  co.resolver.lookup = table_lookup({{"dual.test", {Address::ipv6_loopback(0),
                                                    Address::ipv4_loopback(0)}}});
  Heard h;
  Connector connector(*loop, co);
  netloop::ConnectOptions o;
  o.attempt_delay = 2s;  // the fallback must not wait for it
  auto t0 = SteadyClock::now();
  connector.connect("dual.test", port, std::make_unique<Client>(h), o);
  REQUIRE(run_until(*loop, [&] { return h.opens == 1; }));
  CHECK(SteadyClock::now() - t0 < 1s);
  CHECK(h.peer == Address::ipv4_loopback(port));
  CHECK(connector.stats().attempts.get() == 2);
  REQUIRE(run_until(*loop, [&] { return h.closes == 1; }));
  CHECK(h.echoed == "hello");
}

TEST_CASE("connector: Happy Eyeballs: a silent IPv6 attempt gets the IPv4 one after the delay, "
          "and is closed when IPv4 wins") {
  if (!ipv6_loopback_usable()) {
    MESSAGE("::1 is not usable here; skipped");
    return;
  }
  BlackHole hole6(true);
  auto loop = make_loop();
  auto server = echo_listener(*loop, Address::ipv4_loopback(0));
  ConnectorOptions co;
  // The test's lookup gives each family its own port: the hole on ::1, the server on IPv4.
  Address v6 = hole6.address, v4 = server->local_address();
  co.resolver.lookup = [v6, v4](const std::string&, uint16_t) -> Result<Addresses> {
    return Addresses{v6, v4};
  };
  Heard h;  // before the connector: its tear-down closes the connection, which tells h
  Connector connector(*loop, co);
  netloop::ConnectOptions o;
  o.attempt_delay = 150ms;
  size_t fds_before = open_fds();
  auto t0 = SteadyClock::now();
  connector.connect("dual.test", 1, std::make_unique<Client>(h, ""), o);
  REQUIRE(run_until(*loop, [&] { return h.opens == 1; }));
  auto took = SteadyClock::now() - t0;
  CHECK(took >= 140ms);
  CHECK(took < 2s);
  CHECK(h.peer == v4);
  CHECK(connector.stats().attempts.get() == 2);
  CHECK(connector.pending_count() == 0);
  // The losing IPv6 socket is closed: only the connection's own descriptor (and the
  // server's accepted one) are new.
  run_until(*loop, [] { return false; }, 50ms);
  CHECK(open_fds() <= fds_before + 2);
}

TEST_CASE("connector: cancel while resolving: no callback, the handler is destroyed") {
  auto loop = make_loop();
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  ConnectorOptions co;
  co.resolver.lookup = [gate](const std::string&, uint16_t port) -> Result<Addresses> {
    gate.wait();
    return Addresses{Address::ipv4_loopback(port)};
  };
  Heard h;
  Connector connector(*loop, co);
  ConnectId id = connector.connect("slow.test", closed_port(), std::make_unique<Client>(h));
  loop->run_once(10);
  CHECK(connector.resolver().pending() == 1);
  CHECK(connector.cancel(id));
  CHECK_FALSE(connector.cancel(id));
  CHECK(h.destroyed);
  CHECK(connector.resolver().pending() == 0);
  release.set_value();
  run_until(*loop, [] { return false; }, 100ms);
  CHECK(h.opens == 0);
  CHECK(h.closes == 0);
  CHECK(connector.stats().cancelled.get() == 1);
}

TEST_CASE("connector: cancel while connecting closes the socket, with no callback") {
  BlackHole hole;
  auto loop = make_loop();
  Connector connector(*loop);
  size_t fds_before = open_fds();
  for (int i = 0; i < 50; ++i) {
    Heard h;
    ConnectId id = connector.connect(hole.address, std::make_unique<Client>(h));
    loop->run_once(0);
    CHECK(connector.pending_count() == 1);
    CHECK(connector.cancel(id));
    loop->run_once(0);
    CHECK(h.destroyed);
    CHECK(h.closes == 0);
  }
  loop->run_once(0);
  CHECK(connector.pending_count() == 0);
  CHECK(open_fds() == fds_before);
}

TEST_CASE("connector: binds the local address asked for; a family mismatch fails clearly") {
  auto loop = make_loop();
  auto server = echo_listener(*loop, Address::ipv4_loopback(0));
  Heard h;
  Connector connector(*loop);
  netloop::ConnectOptions o;
  o.local = Address::ipv4_loopback(0);
  connector.connect(server->local_address(), std::make_unique<Client>(h), o);
  REQUIRE(run_until(*loop, [&] { return h.closes == 1; }));
  CHECK(h.opens == 1);
  CHECK(h.local.host() == "127.0.0.1");
  CHECK(h.local.port() != 0);

  Heard m;
  o.local = Address::ipv6_loopback(0);
  connector.connect(server->local_address(), std::make_unique<Client>(m), o);
  REQUIRE(run_until(*loop, [&] { return m.closes == 1; }));
  CHECK(m.opens == 0);
  CHECK(m.info.error == std::errc::address_family_not_supported);
}

TEST_CASE("connector: keep_connected reconnects after failures and after a close") {
  auto loop = make_loop();
  uint16_t port = closed_port();
  Connector connector(*loop);
  int opens = 0, failures = 0, closes = 0;
  struct Kept final : StreamHandler {
    int &opens, &failures, &closes;
    Kept(int& o, int& f, int& c) : opens(o), failures(f), closes(c) {}
    void on_open(Connection& c) override {
      ++opens;
      c.close();  // a short-lived connection: the keeper must connect again
    }
    void on_data(Connection&, Buffer& in) override { in.consume(in.size()); }
    void on_close(Connection&, const CloseInfo& i) override {
      (i.reason == CloseReason::connect_failed ? failures : closes)++;
    }
  };
  ReconnectOptions r;
  r.initial = 20ms;
  r.max = 40ms;
  ConnectId id = connector.keep_connected(
      "127.0.0.1", port, [&] { return std::make_unique<Kept>(opens, failures, closes); }, r);
  REQUIRE(run_until(*loop, [&] { return failures >= 3; }));
  CHECK(opens == 0);
  // Now something listens there.
  auto server = echo_listener(*loop, Address::ipv4_loopback(port));
  REQUIRE(run_until(*loop, [&] { return opens >= 2; }));
  CHECK(closes >= 1);
  CHECK(connector.stats().reconnects.get() >= 4);
  CHECK(connector.cancel(id));
  int opens_then = opens;
  run_until(*loop, [] { return false; }, 150ms);
  CHECK(opens <= opens_then + 1);  // at most the one that was closing
  CHECK(connector.pending_count() == 0);
  CHECK(connector.connection_count() == 0);
}

TEST_CASE("connector: destroying it closes its connections (shutdown) and drops pending ones") {
  BlackHole hole;
  auto loop = make_loop();
  auto server = echo_listener(*loop, Address::ipv4_loopback(0));
  Heard up, waiting;
  {
    Connector connector(*loop);
    connector.connect(server->local_address(), std::make_unique<Client>(up, ""));
    connector.connect(hole.address, std::make_unique<Client>(waiting));
    REQUIRE(run_until(*loop, [&] { return up.opens == 1; }));
    CHECK(connector.connection_count() == 1);
    CHECK(connector.pending_count() == 1);
  }
  loop->run_once(0);
  CHECK(up.closes == 1);
  CHECK(up.info.reason == CloseReason::shutdown);
  CHECK(waiting.closes == 0);
  CHECK(waiting.destroyed);
}

// --- Handlers that call back into the connector ----------------------------------------

namespace {

struct DestroyOnClose final : StreamHandler {
  std::unique_ptr<Connector>& owner;
  int& closes;
  DestroyOnClose(std::unique_ptr<Connector>& o, int& c) : owner(o), closes(c) {}
  void on_open(Connection& c) override { c.close(); }
  void on_data(Connection&, Buffer& in) override { in.consume(in.size()); }
  void on_close(Connection&, const CloseInfo&) override {
    ++closes;
    owner.reset();  // a one-shot client tears its connector down when done
  }
};

struct ConnectAgainOnClose final : StreamHandler {
  Connector& connector;
  Address to;
  Heard& next;
  ConnectId& got;
  ConnectAgainOnClose(Connector& c, Address a, Heard& n, ConnectId& g)
      : connector(c), to(a), next(n), got(g) {}
  void on_data(Connection&, Buffer& in) override { in.consume(in.size()); }
  void on_close(Connection&, const CloseInfo&) override {
    got = connector.connect(to, std::make_unique<Client>(next));
  }
};

}  // namespace

TEST_CASE("connector: destroyed from a connection's own on_close") {
  auto loop = make_loop();
  auto server = echo_listener(*loop, Address::ipv4_loopback(0));
  int closes = 0;
  auto connector = std::make_unique<Connector>(*loop);
  connector->connect(server->local_address(), std::make_unique<DestroyOnClose>(connector, closes));
  REQUIRE(run_until(*loop, [&] { return closes == 1; }));
  CHECK(connector == nullptr);
  run_until(*loop, [] { return false; }, 50ms);  // (ASan: nothing touches the freed connector)
  CHECK(closes == 1);
}

TEST_CASE("connector: a handler connecting again from on_close(shutdown) while it is destroyed "
          "is refused") {
  BlackHole hole;
  auto loop = make_loop();
  auto server = echo_listener(*loop, Address::ipv4_loopback(0));
  Heard next;
  ConnectId again = 99;
  {
    Connector connector(*loop);
    connector.connect(server->local_address(),
                      std::make_unique<ConnectAgainOnClose>(connector, hole.address, next, again));
    REQUIRE(run_until(*loop, [&] { return connector.connection_count() == 1; }));
  }
  CHECK(again == 0);
  CHECK(next.destroyed);
  run_until(*loop, [] { return false; }, 100ms);
  CHECK(next.closes == 0);
}

TEST_CASE("connector: cancelling a keep_connected from its connection's on_data closes it after "
          "on_data returns") {
  auto loop = make_loop();
  auto server = echo_listener(*loop, Address::ipv4_loopback(0));
  Connector connector(*loop);
  ConnectId id = 0;
  bool in_on_data = false, closed_inside = false;
  int closes = 0;
  CloseReason reason = CloseReason::local;
  struct Canceller final : StreamHandler {
    Connector& c;
    ConnectId& id;
    bool &inside, &closed_inside;
    int& closes;
    CloseReason& reason;
    Canceller(Connector& c, ConnectId& id, bool& in, bool& ci, int& n, CloseReason& r)
        : c(c), id(id), inside(in), closed_inside(ci), closes(n), reason(r) {}
    void on_open(Connection& conn) override { conn.send("x"); }
    void on_data(Connection&, Buffer& in) override {
      in.consume(in.size());
      inside = true;
      c.cancel(id);  // "done: stop keeping this connection"
      inside = false;
    }
    void on_close(Connection&, const CloseInfo& i) override {
      closed_inside = inside;
      reason = i.reason;
      ++closes;
    }
  };
  ReconnectOptions r;
  r.initial = 10ms;
  id = connector.keep_connected("127.0.0.1", server->local_address().port(), [&] {
    return std::make_unique<Canceller>(connector, id, in_on_data, closed_inside, closes, reason);
  }, r);
  REQUIRE(run_until(*loop, [&] { return closes == 1; }));
  CHECK_FALSE(closed_inside);
  CHECK(reason == CloseReason::shutdown);
  run_until(*loop, [] { return false; }, 100ms);
  CHECK(closes == 1);  // no reconnect after the cancel
  CHECK(connector.connection_count() == 0);
  CHECK(connector.pending_count() == 0);
}

TEST_CASE("connector: cancelling a keep_connected whose connection is up closes it (shutdown), "
          "and nothing reconnects") {
  auto loop = make_loop();
  auto server = echo_listener(*loop, Address::ipv4_loopback(0));
  Heard h;
  Connector connector(*loop);
  int made = 0;
  ReconnectOptions r;
  r.initial = 10ms;
  ConnectId id = connector.keep_connected("127.0.0.1", server->local_address().port(), [&] {
    ++made;
    return std::make_unique<Client>(h, "");
  }, r);
  REQUIRE(run_until(*loop, [&] { return h.opens == 1; }));
  CHECK(connector.connection_count() == 1);
  CHECK(connector.cancel(id));
  CHECK(h.closes == 1);
  CHECK(h.info.reason == CloseReason::shutdown);
  run_until(*loop, [] { return false; }, 100ms);
  CHECK(made == 1);
  CHECK(connector.connection_count() == 0);
  CHECK_FALSE(connector.cancel(id));
}

TEST_CASE("connector: a handler may destroy the connector from its on_open") {
  auto loop = make_loop();
  auto listener = echo_listener(*loop, Address::ipv4_loopback(0));
  auto connector = std::make_unique<Connector>(*loop);
  class Destroyer final : public StreamHandler {
   public:
    Destroyer(std::unique_ptr<Connector>& c, bool& opened) : c_(c), opened_(opened) {}
    void on_open(Connection&) override {
      opened_ = true;
      c_.reset();  // this handler's own connection closes (shutdown) when this returns
    }
    void on_data(Connection&, Buffer& in) override { in.consume(in.size()); }

   private:
    std::unique_ptr<Connector>& c_;
    bool& opened_;
  };
  bool opened = false;
  connector->connect("127.0.0.1", listener->local_address().port(),
                     std::make_unique<Destroyer>(connector, opened));
  REQUIRE(run_until(*loop, [&] { return connector == nullptr; }));
  CHECK(opened);
  loop->run_once(10);
}
