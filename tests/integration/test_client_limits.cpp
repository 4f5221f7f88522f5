// Integration tests for the per-client connection limit (ListenerOptions::client_limit)
// and the HTTP request-rate limit, over real loopback sockets: a client past its limit
// is refused at once (or answered 503), another client (127.0.0.2) is not, a slot comes
// back when a connection closes, and every way a connection ends (close, abort, refusal,
// the listener going away) gives its count back exactly once.
#include "support.hpp"

#include <arpa/inet.h>

#include "http/http_handler.hpp"
#include "http/http_responder.hpp"
#include "netloop/client_limit.hpp"
#include "netloop/proxy_protocol_options.hpp"
#include "netloop/rate_limit.hpp"
#include "netloop/server.hpp"

using namespace nltest;
using netloop::Address;
using netloop::ClientConnectionLimit;

namespace {

// A client socket bound to `from` (127.0.0.2 is loopback on Linux) connected to `to`.
Sock connect_from(const std::string& from, const Address& to) {
  Sock s(::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(s.valid());
  set_timeouts(s.get(), 5s);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  REQUIRE(::inet_pton(AF_INET, from.c_str(), &local.sin_addr) == 1);
  REQUIRE_MESSAGE(::bind(s.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) == 0,
                  "bind " << from << ": " << std::strerror(errno));
  REQUIRE_MESSAGE(::connect(s.get(), to.sockaddr_ptr(), to.length()) == 0,
                  "connect: " << std::strerror(errno));
  return s;
}

Sock connect_ok(const Address& to) {
  Sock s = connect_to(to, {.timeout = 5s});
  REQUIRE_MESSAGE(s.valid(), "connect: " << std::strerror(errno));
  return s;
}

// Served: the echo answers. Refused: the server closes without a byte.
bool echoes(const Sock& s) { return echo_once(s.get(), "ping") == "ping"; }
bool refused_at_once(const Sock& s) {
  Ending e = wait_end(s.get(), 5s);
  return e == Ending::eof || e == Ending::reset;
}

std::shared_ptr<ClientConnectionLimit> start_echo(ServerThread& srv, size_t per_client,
                                                  Address at = Address::ipv4_loopback(0)) {
  auto limit = std::make_shared<ClientConnectionLimit>(per_client);
  ServerThread::Config cfg;
  cfg.address = at;
  cfg.options.client_limit = limit;
  REQUIRE(!srv.start(cfg));
  return limit;
}

// A refusal handler: a word, then close.
class Busy final : public netloop::StreamHandler {
 public:
  void on_open(netloop::Connection& c) override {
    c.send("busy\n");
    c.close();
  }
  void on_data(netloop::Connection&, netloop::Buffer& in) override { in.clear(); }
};

}  // namespace

TEST_CASE("per-client limit 3: the 4th connection is refused, a slot comes back on close") {
  ServerThread srv;
  auto limit = start_echo(srv, 3);
  std::vector<Sock> mine;
  for (int i = 0; i < 3; ++i) {
    mine.push_back(connect_ok(srv.address()));
    CHECK(echoes(mine.back()));
  }
  Sock fourth = connect_ok(srv.address());
  CHECK(refused_at_once(fourth));
  CHECK(srv.stats().refused_per_client == 1);
  CHECK(srv.stats().refused == 0);

  // Another client, 127.0.0.2, is not held back by 127.0.0.1's count.
  Sock other = connect_from("127.0.0.2", srv.address());
  CHECK(echoes(other));
  CHECK(limit->clients() == 2);

  mine[0].reset();  // one of 127.0.0.1's closes: once the server has seen it, room again
  REQUIRE(wait_until([&] { return limit->open(limit->key_of(srv.address())) == 2; }, 5s));
  Sock again = connect_ok(srv.address());
  CHECK(echoes(again));
  Sock over = connect_ok(srv.address());
  CHECK(refused_at_once(over));
  CHECK(srv.stats().refused_per_client == 2);

  mine.clear();
  again.reset();
  other.reset();
  CHECK(wait_until([&] { return limit->open_total() == 0 && limit->clients() == 0; }, 5s));
  CHECK(srv.connection_count() == 0);
}

TEST_CASE("per-client limit over IPv6 (::1)") {
  ServerThread srv;
  auto limit = start_echo(srv, 3, Address::ipv6_loopback(0));
  std::vector<Sock> socks;
  for (int i = 0; i < 3; ++i) {
    socks.push_back(connect_ok(srv.address()));
    CHECK(echoes(socks.back()));
  }
  Sock fourth = connect_ok(srv.address());
  CHECK(refused_at_once(fourth));
  CHECK(srv.stats().refused_per_client == 1);
  socks.clear();
  CHECK(wait_until([&] { return limit->open_total() == 0 && limit->clients() == 0; }, 5s));
}

TEST_CASE("per-client limit with the HTTP refusal handler: a 503") {
  netloop::http::HttpOptions ho;
  auto responder = netloop::http::HttpResponder::create(ho);
  REQUIRE(responder.ok());
  auto r = *responder;
  auto limit = std::make_shared<ClientConnectionLimit>(2);
  ServerThread srv;
  ServerThread::Config cfg;
  cfg.factory = r->factory();
  cfg.options.client_limit = limit;
  cfg.options.refusal_factory = netloop::http::refusal_factory(r);
  REQUIRE(!srv.start(cfg));
  const std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  std::vector<Sock> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(connect_ok(srv.address()));
    REQUIRE(send_all(held.back().get(), get));
    CHECK(recv_exact(held.back().get(), 12) == "HTTP/1.1 200");
  }
  Sock third = connect_ok(srv.address());
  std::string answer = recv_exact(third.get(), 4096);  // the whole answer: until the close
  CHECK(answer.rfind("HTTP/1.1 503", 0) == 0);
  CHECK(answer.find("Connection: close") != std::string::npos);
  CHECK(srv.stats().refused_per_client == 1);
  held.clear();
  CHECK(wait_until([&] { return limit->open_total() == 0; }, 5s));
}

TEST_CASE("every way a connection ends gives its client count back exactly once") {
  // Closes by the client, closes and aborts by the handler, refusals past the client's
  // limit and past max_connections (with and without a refusal handler), and the listener
  // destroyed with connections open: afterwards nothing is counted.
  for (bool with_refusal_handler : {false, true}) {
    CAPTURE(with_refusal_handler);
    auto limit = std::make_shared<ClientConnectionLimit>(2);
    auto global = std::make_shared<netloop::ConnectionLimit>(3);
    auto journal = std::make_shared<Journal>();
    ServerThread srv;
    ServerThread::Config cfg;
    cfg.factory = journal_factory(journal, {.close_on = 'c', .abort_on = 'a'});
    cfg.options.client_limit = limit;
    cfg.options.limit = global;
    if (with_refusal_handler)
      cfg.options.refusal_factory = [] { return std::make_unique<Busy>(); };
    REQUIRE(!srv.start(cfg));
    auto counted_now = [&] { return limit->open_total(); };

    for (int round = 0; round < 5; ++round) {
      Sock a = connect_ok(srv.address());
      Sock b = connect_ok(srv.address());
      CHECK(echoes(a));
      CHECK(echoes(b));
      Sock refused = connect_ok(srv.address());  // 127.0.0.1's third: per-client refusal
      if (with_refusal_handler) CHECK(recv_exact(refused.get(), 5) == "busy\n");
      CHECK(refused_at_once(refused));
      Sock c = connect_from("127.0.0.2", srv.address());
      CHECK(echoes(c));
      Sock past_global = connect_from("127.0.0.3", srv.address());  // the 4th: max_connections
      if (with_refusal_handler) CHECK(recv_exact(past_global.get(), 5) == "busy\n");
      CHECK(refused_at_once(past_global));
      REQUIRE(send_all(a.get(), "c"));  // the handler closes
      REQUIRE(send_all(b.get(), "a"));  // the handler aborts
      CHECK(wait_end(a.get()) == Ending::eof);
      CHECK(wait_end(b.get()) == Ending::reset);
      c.reset();  // the client closes
      // The handler-closed one lingers until its peer's end: that comes now too.
      a.reset();
      b.reset();
      refused.reset();
      past_global.reset();
      CHECK(wait_until([&] { return counted_now() == 0 && global->open() == 0; }, 5s));
      CHECK(limit->clients() == 0);
    }
    {
      auto st = srv.stats();
      CHECK(st.refused_per_client == 5);
      CHECK(st.refused == 5);
    }
    // Connections open when the listener goes: released by its destructor's closes.
    std::vector<Sock> open;
    open.push_back(connect_ok(srv.address()));
    open.push_back(connect_from("127.0.0.2", srv.address()));
    for (auto& s : open) CHECK(echoes(s));
    CHECK(counted_now() == 2);
    srv.destroy_listener();
    CHECK(wait_until([&] { return counted_now() == 0 && global->open() == 0; }, 5s));
    CHECK(limit->clients() == 0);
    srv.stop();
    CHECK(counted_now() == 0);
  }
}

TEST_CASE("HTTP rate limit: past the burst a 429 with Retry-After, the connection kept") {
  netloop::http::HttpOptions ho;
  ho.rate_limiter = std::make_shared<netloop::RateLimiter>(netloop::RateLimitConfig{1, 3}, 64);
  auto responder = netloop::http::HttpResponder::create(ho);
  REQUIRE(responder.ok());
  ServerThread srv;
  ServerThread::Config cfg;
  cfg.factory = (*responder)->factory();
  REQUIRE(!srv.start(cfg));
  Sock s = connect_ok(srv.address());
  // Four requests pipelined in one write: three served, the fourth refused; the
  // connection stays usable.
  std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(send_all(s.get(), get + get + get + get));
  std::string got;
  char buf[65536];
  auto count = [&](std::string_view what) {
    size_t n = 0;
    for (size_t at = got.find(what); at != std::string::npos; at = got.find(what, at + 1)) ++n;
    return n;
  };
  REQUIRE(wait_until([&] {
    ssize_t n = ::recv(s.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) got.append(buf, size_t(n));
    return count("HTTP/1.1 ") == 4 && got.find("rate limit") != std::string::npos;
  }, 5s));
  CHECK(count("HTTP/1.1 200") == 3);
  CHECK(count("HTTP/1.1 429 Too Many Requests\r\n") == 1);
  CHECK(got.find("Retry-After: 1\r\n") != std::string::npos);
  CHECK(srv.connection_count() == 1);  // still open
  // Another client is unaffected.
  Sock other = connect_from("127.0.0.2", srv.address());
  REQUIRE(send_all(other.get(), get));
  CHECK(recv_exact(other.get(), 12) == "HTTP/1.1 200");
  CHECK((*responder)->stats().rate_limited == 1);
}

TEST_CASE("Server: one client table for every loop (SO_REUSEPORT and the acceptor)") {
  for (bool reuse_port : {true, false}) {
    CAPTURE(reuse_port);
    netloop::ServerOptions o;
    o.threads = 4;
    o.reuse_port = reuse_port;
    o.max_connections_per_client = 3;
    netloop::Server server(o);
    server.add_stream("echo", Address::ipv4_loopback(0), [](netloop::EventLoop&, size_t) {
      return netloop::StreamService{.factory = netloop::echo::tcp_echo_factory()};
    });
    std::string why;
    REQUIRE_MESSAGE(server.start(&why).ok(), why);
    const Address addr = server.bound()[0].address;
    std::thread runner([&] { server.run(); });
    // Twelve connections from 127.0.0.1, spread over four loops: three served in all,
    // whichever loops they landed on; a table per loop would serve up to twelve.
    std::vector<Sock> socks;
    size_t served = 0;
    for (int i = 0; i < 12; ++i) {
      socks.push_back(connect_ok(addr));
      served += echoes(socks.back());
    }
    CHECK(served == 3);
    Sock other = connect_from("127.0.0.2", addr);
    CHECK(echoes(other));
    CHECK(wait_until([&] { return server.totals().refused_per_client == 9; }, 5s));
    CHECK(server.totals().refused == 0);
    socks.clear();
    other.reset();
    CHECK(wait_until([&] { return server.totals().connections_open == 0; }, 5s));
    // Room again for 127.0.0.1 once its connections are gone.
    Sock again = connect_ok(addr);
    CHECK(echoes(again));
    again.reset();
    server.stop();
    runner.join();
  }
}

TEST_CASE("per-client limit behind PROXY headers counts the client each header names") {
  auto limit = std::make_shared<ClientConnectionLimit>(2);
  ServerThread srv;
  ServerThread::Config cfg;
  cfg.options.client_limit = limit;
  cfg.options.proxy_protocol = std::make_shared<netloop::ProxyProtocolOptions>();
  cfg.options.refusal_factory = [] { return std::make_unique<Busy>(); };
  REQUIRE(!srv.start(cfg));
  // Every connection comes from 127.0.0.1 (the balancer); the headers name the clients.
  auto as_client = [&](const char* client) {
    Sock s = connect_ok(srv.address());
    std::string header = std::string("PROXY TCP4 ") + client + " 127.0.0.1 40000 7\r\n";
    REQUIRE(send_all(s.get(), header));
    return s;
  };
  std::vector<Sock> seven;
  for (int i = 0; i < 2; ++i) {
    seven.push_back(as_client("192.0.2.7"));
    CHECK(echoes(seven.back()));
  }
  Sock third = as_client("192.0.2.7");
  CHECK(recv_exact(third.get(), 5) == "busy\n");  // the refusal handler's answer
  CHECK(refused_at_once(third));
  Sock other = as_client("192.0.2.8");  // another client behind the same balancer
  CHECK(echoes(other));
  CHECK(srv.stats().refused_per_client == 1);
  CHECK(limit->clients() == 2);
  seven.clear();
  third.reset();
  other.reset();
  CHECK(wait_until([&] { return limit->open_total() == 0 && limit->clients() == 0; }, 5s));
}
