// Handover (netloop/handover.hpp) on loopback: server A passes its listening sockets to
// server B over a UNIX socket; connections A had accepted are drained by A (an orderly
// end, never a reset), connections still queued in the listen backlog and datagrams still
// queued on the UDP sockets are served by B, and A's run() returns after its drain. B
// with more loops than A binds more SO_REUSEPORT sockets, with fewer serves the extra
// ones from its loops. Failures (nothing at the path, a stale socket, a file, garbage,
// a peer closing mid-transfer, a silent peer) are clear errors and leak no descriptor;
// a new instance that never confirms leaves the old one serving. Never both draining: an
// old one gone or silent after sending is an unclear outcome (the new one serves on), a
// new one gone before the acknowledgement leaves the old one serving. A fresh start is
// refused while an instance holds PATH.lock; another user's socket file or process is
// not trusted. After a swap that failed once the sockets went out, the old instance sets
// its own socket settings (accept deferral, backlog) again.
//
// A's loops are held (a posted task that waits) while clients connect, so that their
// connections sit in the backlog when B takes over; the handover source runs on a loop
// of its own, as a demo's would on loop 0.
#include "support.hpp"

#include <fstream>
#include <future>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <csignal>

#include "echo/tcp_echo.hpp"
#include "echo/udp_echo.hpp"
#include "netloop/handover.hpp"
#include "netloop/server.hpp"

using namespace nltest;
using netloop::Address;
using netloop::HandoverClient;
using netloop::HandoverOptions;
using netloop::HandoverSource;
using netloop::ListeningSocket;
using netloop::Server;
using netloop::ServerOptions;
using netloop::StreamService;

namespace {

ServerOptions source_opts(size_t threads) {
  ServerOptions o;
  o.threads = threads;
  o.handover_source = true;
  o.drain_timeout = netloop::seconds(5);
  return o;
}

void add_echo(Server& s, const Address& tcp, const Address& udp) {
  s.add_stream("echo", tcp, [](netloop::EventLoop&, size_t) {
    return StreamService{.factory = netloop::echo::tcp_echo_factory()};
  });
  s.add_datagram("udp-echo", udp, [](netloop::EventLoop&, size_t) {
    return netloop::echo::make_udp_echo_handler();
  });
}

// Server::run() on a thread of its own.
class Running {
 public:
  explicit Running(Server& s) : s_(s), t_([this] {
    s_.run();
    done_.store(true);
  }) {}
  ~Running() {
    if (!done_.load()) s_.stop();
    t_.join();
  }
  bool returned(std::chrono::milliseconds within) {
    return wait_until([this] { return done_.load(); }, within);
  }

 private:
  Server& s_;
  std::atomic<bool> done_{false};
  std::thread t_;
};

// Holds every loop of a server inside a posted task until release().
class Hold {
 public:
  explicit Hold(Server& s) : released_(gate_.get_future().share()) {
    for (size_t i = 0; i < s.loop_count(); ++i) {
      s.loop(i).post([this, f = released_] {
        ++held_;
        f.wait();
      });
    }
  }
  bool all_held(size_t n) {
    return wait_until([&] { return held_.load() == n; }, 5s);
  }
  void release() {
    if (!done_) gate_.set_value();
    done_ = true;
  }
  ~Hold() { release(); }

 private:
  std::promise<void> gate_;
  std::shared_future<void> released_;
  std::atomic<size_t> held_{0};
  bool done_ = false;
};

// An event loop on a thread of its own, for the handover source.
class SideLoop {
 public:
  SideLoop() : loop_(make_loop()) {
    t_ = std::thread([this] { loop_->run(); });
  }
  ~SideLoop() {
    loop_->post([this] {
      source_.reset();
      loop_->stop();
    });
    t_.join();
  }
  netloop::EventLoop& loop() { return *loop_; }
  // Listens at `path` on this loop; passes `server`'s sockets, drains it when taken.
  void serve(const std::string& path, Server& server, std::atomic<int>* taken = nullptr,
             const netloop::HandoverOptions& options = {}) {
    std::promise<std::string> made;
    loop_->post([&] {
      std::string why;
      auto s = HandoverSource::listen(
          *loop_, path, [&server] { return server.listening_sockets(); },
          [&server, taken] {
            if (taken) ++*taken;
            server.drain();
          },
          options, &why);
      if (s) source_ = std::move(*s);
      made.set_value(s ? std::string() : why);
    });
    std::string why = made.get_future().get();
    REQUIRE_MESSAGE(why.empty(), why);
  }

 private:
  std::unique_ptr<netloop::EventLoop> loop_;
  std::unique_ptr<HandoverSource> source_;
  std::thread t_;
};

// The old instance of a swap: a Server with TCP and UDP echo (`tcp`, `udp`), its handover
// source at `path` on a side loop, running on a thread of its own. As the demo does, it
// drains once its sockets are taken (counted in `taken`) and, after a swap that failed
// once they went out, sets its own socket options again (counted in `not_taken`).
struct OldInstance {
  TempDir dir{"netloop-handover"};
  const std::string path = (dir / "h.sock").string();
  Server server;
  Address tcp, udp;
  SideLoop side;
  std::atomic<int> taken{0}, not_taken{0};
  std::optional<Running> running;

  explicit OldInstance(const ServerOptions& options) : server(options) {
    add_echo(server, Address::ipv4_loopback(0), Address::ipv4_loopback(0));
    std::string why;
    REQUIRE_MESSAGE(server.start(&why).ok(), why);
    tcp = server.bound()[0].address;
    udp = server.bound()[1].address;
    netloop::HandoverOptions ho;
    ho.not_taken = [this] {
      server.restore_socket_options();
      ++not_taken;
    };
    side.serve(path, server, &taken, ho);
    running.emplace(server);
  }
};

// B's confirmation, sent from B's loop 0 once it runs; the result comes back here.
std::future<std::string> confirm_on(Server& b, HandoverClient& client) {
  auto result = std::make_shared<std::promise<std::string>>();
  auto f = result->get_future();
  b.loop(0).post([&b, &client, result] {
    client.confirm(b.loop(0), [result](HandoverClient::Outcome o, const std::string& why) {
      result->set_value(o == HandoverClient::Outcome::draining ? std::string() : why);
    });
  });
  return f;
}

Sock udp_client() {
  Sock s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  set_timeouts(s.get(), 5s);
  return s;
}

// `a_threads` loops hand over to `b_threads` loops.
void handover_under_load(size_t a_threads, size_t b_threads) {
  CAPTURE(a_threads);
  CAPTURE(b_threads);
  OldInstance old(source_opts(a_threads));
  std::string why;

  // Connections A accepts and serves before the handover.
  std::vector<Sock> served;
  for (int i = 0; i < 8; ++i) {
    served.push_back(connect_to(old.tcp, {.timeout = 5s}));
    REQUIRE(served.back().valid());
    std::string msg = "before " + std::to_string(i);
    REQUIRE(echo_once(served.back().get(), msg) == msg);
  }
  REQUIRE(wait_until([&] { return old.server.totals().connections_open == 8; }, 5s));

  // A's loops stop; what comes now waits in the sockets' queues.
  Hold hold(old.server);
  REQUIRE(hold.all_held(a_threads));
  const uint64_t accepted_by_a = old.server.totals().accepted;
  std::vector<Sock> queued;
  for (int i = 0; i < 40; ++i) {
    queued.push_back(connect_to(old.tcp, {.timeout = 5s}));
    REQUIRE_MESSAGE(queued.back().valid(), std::strerror(errno));
    REQUIRE(send_all(queued.back().get(), "queued " + std::to_string(i)));
  }
  Sock dgram = udp_client();
  for (int i = 0; i < 10; ++i) {
    std::string d = "datagram " + std::to_string(i);
    REQUIRE(::sendto(dgram.get(), d.data(), d.size(), 0, old.udp.sockaddr_ptr(), old.udp.length()) ==
            ssize_t(d.size()));
  }

  // B takes over: it must not bind anything of its own but where it has more loops.
  auto client = HandoverClient::request(old.path, {}, &why);
  REQUIRE_MESSAGE(client, why);
  REQUIRE((*client)->found());
  auto inherited = (*client)->take_sockets();
  CHECK(inherited.size() == 2 * a_threads);
  ServerOptions bo = source_opts(b_threads);
  Server b(bo);
  add_echo(b, Address::ipv4_loopback(0), Address::ipv4_loopback(0));  // port 0: take A's
  REQUIRE_MESSAGE(b.start(std::move(inherited), &why).ok(), why);
  CHECK(b.bound()[0].address == old.tcp);
  CHECK(b.bound()[1].address == old.udp);
  auto confirmed = confirm_on(b, **client);
  Running run_b(b);
  REQUIRE(confirmed.wait_for(5s) == std::future_status::ready);
  CHECK_MESSAGE(confirmed.get().empty(), "confirmation");
  CHECK(old.taken.load() == 1);

  // Every queued connection is B's: its echo comes back.
  for (size_t i = 0; i < queued.size(); ++i) {
    std::string want = "queued " + std::to_string(i);
    CHECK_MESSAGE(recv_exact(queued[i].get(), want.size()) == want, "queued connection " << i);
  }
  CHECK(b.totals().accepted == queued.size());
  std::multiset<std::string> echoed;
  for (int i = 0; i < 10; ++i) {
    char buf[64];
    ssize_t n = ::recv(dgram.get(), buf, sizeof buf, 0);
    if (n > 0) echoed.insert(std::string(buf, size_t(n)));
  }
  CHECK(echoed.size() == 10);

  // A drains: its own connections end in order, and run() returns.
  hold.release();
  CHECK(old.running->returned(5s));
  CHECK(old.server.totals().accepted == accepted_by_a);
  for (auto& s : served) CHECK(to_cstr(wait_end(s.get(), 5s)) == std::string("eof"));
  // New connections still work, on B alone.
  for (int i = 0; i < 10; ++i) {
    Sock s = connect_to(old.tcp, {.timeout = 5s});
    REQUIRE(s.valid());
    CHECK(echo_once(s.get(), "after") == "after");
  }
  CHECK(b.totals().accepted == queued.size() + 10);
  b.drain();
  CHECK(run_b.returned(5s));
}

// A fake old instance: accepts one connection at `path`, reads the request, then does
// `script` with the connection's descriptor.
class FakeSource {
 public:
  FakeSource(const std::string& path, std::function<void(int)> script) {
    fd_ = Sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    REQUIRE(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(fd_.get(), 4) == 0);
    t_ = std::thread([this, script] {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) return;
      Sock c(::accept(fd_.get(), nullptr, nullptr));
      set_timeouts(c.get(), 5s);
      char buf[64];
      (void)::recv(c.get(), buf, sizeof buf, 0);
      script(c.get());
    });
  }
  ~FakeSource() { t_.join(); }

 private:
  Sock fd_;
  std::thread t_;
};

// Best effort.
void send_line(int fd, const std::string& line, int pass = -1) {
  std::string text = line + "\n";
  iovec iov{text.data(), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (pass >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass, sizeof pass);
  }
  // The client may have hung up already (it saw an error): nothing to check here, on
  // the fake's thread.
  (void)::sendmsg(fd, &msg, MSG_NOSIGNAL);
}

// A real listening socket to pass, and its line.
struct Listening {
  Sock fd;
  std::string line;
};
Listening a_listener() {
  Listening l;
  l.fd = Sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Address any = Address::ipv4_loopback(0);
  REQUIRE(::bind(l.fd.get(), any.sockaddr_ptr(), any.length()) == 0);
  REQUIRE(::listen(l.fd.get(), 8) == 0);
  l.line = "socket stream 0 " + Address::local_of(l.fd.get(), any).to_string() + " echo";
  return l;
}

// The client's error for a fake source running `script`; no descriptor may be left.
std::string client_error(const std::function<void(int)>& script,
                         netloop::Duration timeout = netloop::seconds(5)) {
  TempDir dir("netloop-handover");
  const std::string path = (dir / "h.sock").string();
  const size_t fds_before = open_fds();
  std::string why;
  {
    FakeSource fake(path, script);
    HandoverOptions o;
    o.timeout = timeout;
    auto client = HandoverClient::request(path, o, &why);
    CHECK_FALSE(client);
  }
  CHECK(open_fds() == fds_before);
  return why;
}

// One handover at a time: a source still busy with the last one (it has not yet seen
// that client go) answers "busy"; ask again.
netloop::Result<std::unique_ptr<HandoverClient>> request_when_free(const std::string& path,
                                                                    std::string& why) {
  auto client = HandoverClient::request(path, {}, &why);
  for (int i = 0; i < 100 && !client && why.find("busy") != std::string::npos; ++i) {
    std::this_thread::sleep_for(10ms);
    client = HandoverClient::request(path, {}, &why);
  }
  return client;
}

}  // namespace

TEST_CASE("handover: backlog and datagrams go to the new server, the old one drains") {
  handover_under_load(2, 2);
}

TEST_CASE("handover to more loops: the new server binds SO_REUSEPORT sockets for them") {
  handover_under_load(2, 3);
}

TEST_CASE("handover to fewer loops: the extra sockets are still served") {
  handover_under_load(3, 1);
}

TEST_CASE("handover: nothing at the path, or a stale socket, is a fresh start") {
  TempDir dir("netloop-handover");
  const std::string path = (dir / "h.sock").string();
  std::string why;
  auto none = HandoverClient::request(path, {}, &why);
  REQUIRE_MESSAGE(none, why);
  CHECK_FALSE((*none)->found());
  none->reset();  // its lock on h.sock.lock, as the instance that died would
  {
    // A socket file nobody listens on: what an instance that died leaves behind.
    Sock s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    REQUIRE(::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  }
  auto stale = HandoverClient::request(path, {}, &why);
  REQUIRE_MESSAGE(stale, why);
  CHECK_FALSE((*stale)->found());
  // ...and is replaced by a source.
  auto loop = make_loop();
  auto source = HandoverSource::listen(*loop, path, [] { return std::vector<ListeningSocket>(); },
                                       [] {}, {}, &why);
  REQUIRE_MESSAGE(source, why);
  struct stat st{};
  CHECK(::stat(path.c_str(), &st) == 0);
  source->reset();
  CHECK(::stat(path.c_str(), &st) < 0);  // removed: it was still its own
}

TEST_CASE("handover: a path that is not a socket is neither used nor replaced") {
  TempDir dir("netloop-handover");
  const std::string path = (dir / "h.sock").string();
  dir.write("h.sock", "precious");
  std::string why;
  auto client = HandoverClient::request(path, {}, &why);
  REQUIRE_FALSE(client);
  CHECK(why.find("not a socket") != std::string::npos);
  auto loop = make_loop();
  auto source = HandoverSource::listen(*loop, path, [] { return std::vector<ListeningSocket>(); },
                                       [] {}, {}, &why);
  CHECK_FALSE(source);
  CHECK(why.find("not a socket") != std::string::npos);
  std::ifstream in(path);
  std::string content;
  in >> content;
  CHECK(content == "precious");
}

TEST_CASE("handover client: garbage, early close, wrong counts and silence are errors") {
  SUBCASE("garbage") {
    std::string why = client_error([](int c) { send_line(c, "hello there"); });
    CHECK_MESSAGE(why.find("protocol error") != std::string::npos, why);
  }
  SUBCASE("a line without end") {
    std::string why = client_error([](int c) {
      std::string junk(4096, 'x');
      (void)::send(c, junk.data(), junk.size(), MSG_NOSIGNAL);
    });
    CHECK_MESSAGE(why.find("too long") != std::string::npos, why);
  }
  SUBCASE("closed after one socket of several") {
    std::string why = client_error([](int c) {
      Listening l = a_listener();
      send_line(c, l.line, l.fd.get());
    });
    CHECK_MESSAGE(why.find("closed the connection after 1 socket") != std::string::npos, why);
  }
  SUBCASE("a socket line without its descriptor") {
    std::string why = client_error([](int c) {
      Listening l = a_listener();
      send_line(c, l.line);
      send_line(c, "end 1");
    });
    CHECK_MESSAGE(why.find("without its descriptor") != std::string::npos, why);
  }
  SUBCASE("a descriptor that is not what its line says") {
    std::string why = client_error([](int c) {
      Listening l = a_listener();
      send_line(c, "socket datagram 0 127.0.0.1:9 udp-echo", l.fd.get());
      send_line(c, "end 1");
    });
    CHECK_MESSAGE(why.find("is not the socket") != std::string::npos, why);
  }
  SUBCASE("a count that does not match") {
    std::string why = client_error([](int c) {
      Listening l = a_listener();
      send_line(c, l.line, l.fd.get());
      send_line(c, "end 2");
    });
    CHECK_MESSAGE(why.find("protocol error") != std::string::npos, why);
  }
  SUBCASE("a refusal") {
    std::string why = client_error([](int c) { send_line(c, "error busy"); });
    CHECK_MESSAGE(why.find("refused: busy") != std::string::npos, why);
  }
  SUBCASE("silence") {
    std::string why = client_error([](int) { std::this_thread::sleep_for(600ms); },
                                   netloop::milliseconds(200));
    CHECK_MESSAGE(why.find("within the timeout") != std::string::npos, why);
  }
}

TEST_CASE("handover source: a new instance that never confirms leaves the old one serving") {
  OldInstance old(source_opts(2));
  std::string why;
  const size_t fds_before = open_fds();
  for (int round = 0; round < 3; ++round) {
    // Takes the sockets, then goes away without a word (a new instance that failed).
    auto client = request_when_free(old.path, why);
    REQUIRE_MESSAGE(client, why);
    REQUIRE((*client)->found());
    CHECK((*client)->take_sockets().size() == 4);
  }
  {
    // Garbage instead of a request.
    Sock s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, old.path.c_str(), sizeof sa.sun_path - 1);
    REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    send_line(s.get(), "give me everything");
    CHECK(to_cstr(wait_end(s.get(), 5s)) != std::string("timeout"));
  }
  CHECK(old.taken.load() == 0);
  CHECK_FALSE(old.server.draining());
  // The source's own copies of what it sent are closed again.
  CHECK(wait_until([&] { return open_fds() == fds_before; }, 5s));
  // A still serves on every socket it had.
  for (int i = 0; i < 20; ++i) {
    Sock s = connect_to(old.tcp, {.timeout = 5s});
    REQUIRE(s.valid());
    CHECK(echo_once(s.get(), "still") == "still");
  }
  // And a real handover still works afterwards.
  auto client = request_when_free(old.path, why);
  REQUIRE_MESSAGE(client, why);
  Server b(source_opts(1));
  add_echo(b, Address::ipv4_loopback(0), Address::ipv4_loopback(0));
  REQUIRE_MESSAGE(b.start((*client)->take_sockets(), &why).ok(), why);
  auto confirmed = confirm_on(b, **client);
  Running run_b(b);
  REQUIRE(confirmed.wait_for(5s) == std::future_status::ready);
  CHECK(confirmed.get().empty());
  CHECK(old.running->returned(5s));
  // A second new instance is told the sockets went elsewhere.
  auto late = HandoverClient::request(old.path, {}, &why);
  CHECK_FALSE(late);
  CHECK_MESSAGE(why.find("draining") != std::string::npos, why);
}

TEST_CASE("listening_sockets: only with handover_source, and not once draining") {
  ServerOptions plain;
  Server s(plain);
  add_echo(s, Address::ipv4_loopback(0), Address::ipv4_loopback(0));
  std::string why;
  REQUIRE(s.start(&why).ok());
  CHECK(s.listening_sockets().error() == std::errc::not_supported);

  Server h(source_opts(2));
  add_echo(h, Address::ipv4_loopback(0), Address::ipv4_loopback(0));
  REQUIRE(h.start(&why).ok());
  auto socks = h.listening_sockets();
  REQUIRE(socks);
  CHECK(socks->size() == 4);
  h.drain();
  CHECK(h.listening_sockets().error() == std::errc::operation_canceled);
}

TEST_CASE("handover to another configuration: new listeners bind, dropped ones are closed") {
  Server a(source_opts(2));
  add_echo(a, Address::ipv4_loopback(0), Address::ipv4_loopback(0));
  std::string why;
  REQUIRE(a.start(&why).ok());
  const Address tcp = a.bound()[0].address;
  auto inherited = a.listening_sockets();
  REQUIRE(inherited);
  const size_t fds_before = open_fds();
  {
    Server b(source_opts(2));
    b.add_stream("echo", tcp, [](netloop::EventLoop&, size_t) {  // the same, by its port
      return StreamService{.factory = netloop::echo::tcp_echo_factory()};
    });
    b.add_stream("echo-2", Address::ipv4_loopback(0), [](netloop::EventLoop&, size_t) {
      return StreamService{.factory = netloop::echo::tcp_echo_factory()};
    });
    REQUIRE_MESSAGE(b.start(std::move(*inherited), &why).ok(), why);
    REQUIRE(b.bound().size() == 2);
    CHECK(b.bound()[0].address == tcp);
    CHECK(b.bound()[1].address.port() != 0);
    CHECK(b.bound()[1].address.port() != tcp.port());
    // Its own copies (handover_source) and listeners: 2 x 2 for echo, 2 x 2 for echo-2;
    // the two UDP sockets it had no registration for are closed (the inherited echo ones
    // became its listeners).
    auto mine = b.listening_sockets();
    REQUIRE(mine);
    CHECK(mine->size() == 4);
    mine->clear();
    Running run_b(b);
    Sock s = connect_to(b.bound()[1].address, {.timeout = 5s});
    REQUIRE(s.valid());
    CHECK(echo_once(s.get(), "new") == "new");
    Sock t = connect_to(tcp, {.timeout = 5s});
    REQUIRE(t.valid());
    CHECK(echo_once(t.get(), "old") == "old");
  }
  // Everything B had is closed with it; the passed duplicates of A's sockets too.
  CHECK(wait_until([&] { return open_fds() + 4 == fds_before; }, 5s));
}

namespace {

// The outcome of confirming to a fake old instance running `script` (after the request).
using Confirmed = std::pair<HandoverClient::Outcome, std::string>;
Confirmed confirm_to_fake(const std::function<void(int)>& script) {
  TempDir dir("netloop-handover");
  const std::string path = (dir / "h.sock").string();
  FakeSource fake(path, script);
  HandoverOptions o;
  o.timeout = netloop::milliseconds(300);
  std::string why;
  auto client = HandoverClient::request(path, o, &why);
  REQUIRE_MESSAGE(client, why);
  REQUIRE((*client)->found());
  auto loop = make_loop();
  std::pair<HandoverClient::Outcome, std::string> out{HandoverClient::Outcome::draining, "none"};
  loop->post([&] {
    (*client)->confirm(*loop, [&](HandoverClient::Outcome r, const std::string& w) {
      out = {r, w};
      loop->stop();
    });
  });
  loop->run();
  return out;
}

// Sends one real listening socket and "end 1", then runs `after`.
std::function<void(int)> sockets_then(std::function<void(int)> after) {
  return [after](int c) {
    Listening l = a_listener();
    send_line(c, l.line, l.fd.get());
    send_line(c, "end 1");
    after(c);
  };
}

}  // namespace

TEST_CASE("handover client: only an explicit refusal after the sockets means stepping back") {
  using Outcome = HandoverClient::Outcome;
  auto wait_taken = [](int c) {
    char buf[64];
    (void)::recv(c, buf, sizeof buf, 0);
  };
  SUBCASE("acknowledged") {
    const Confirmed r = confirm_to_fake(sockets_then([&](int c) {
      wait_taken(c);
      send_line(c, "draining");
    }));
    CHECK(r.first == Outcome::draining);
  }
  SUBCASE("refused") {
    const Confirmed r = confirm_to_fake(sockets_then([&](int c) {
      wait_taken(c);
      send_line(c, "error protocol");
    }));
    CHECK(r.first == Outcome::refused);
    CHECK_MESSAGE(r.second.find("refused") != std::string::npos, r.second);
  }
  SUBCASE("the old instance exits after sending (SIGTERM): keep serving") {
    const Confirmed r = confirm_to_fake(sockets_then([](int) {}));
    CHECK_MESSAGE(r.first == Outcome::unclear, r.second);
  }
  SUBCASE("the old instance stalls after sending: keep serving") {
    const Confirmed r =
        confirm_to_fake(sockets_then([](int) { std::this_thread::sleep_for(800ms); }));
    CHECK_MESSAGE(r.first == Outcome::unclear, r.second);
    CHECK_MESSAGE(r.second.find("within the timeout") != std::string::npos, r.second);
  }
}

TEST_CASE("handover source: a new instance gone before the acknowledgement leaves it serving") {
  OldInstance old(source_opts(1));
  std::string why;

  Sock s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  set_timeouts(s.get(), 5s);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, old.path.c_str(), sizeof sa.sun_path - 1);
  REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  send_line(s.get(), "netloop-handover 1");
  std::string got;
  while (got.find("end ") == std::string::npos || got.back() != '\n') {
    char buf[512];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(s.get(), &msg, MSG_CMSG_CLOEXEC);
    REQUIRE(n > 0);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        ::close(fd);
      }
    }
    got.append(buf, size_t(n));
  }
  // "taken", then gone before the source reads it (its loop is held meanwhile): it must
  // not drain, since nobody hears its "draining".
  std::promise<void> gate;
  std::atomic<bool> held{false};
  old.side.loop().post([&] {
    held = true;
    gate.get_future().wait();
  });
  REQUIRE(wait_until([&] { return held.load(); }, 5s));
  send_line(s.get(), "taken");
  s = Sock();
  gate.set_value();
  std::this_thread::sleep_for(200ms);
  CHECK(old.taken.load() == 0);
  CHECK_FALSE(old.server.draining());
  Sock t = connect_to(old.tcp, {.timeout = 5s});
  REQUIRE(t.valid());
  CHECK(echo_once(t.get(), "still") == "still");
}

TEST_CASE("handover: a running instance whose socket file was deleted blocks a fresh start") {
  TempDir dir("netloop-handover");
  const std::string path = (dir / "h.sock").string();
  std::string why;
  auto first = HandoverClient::request(path, {}, &why);  // a fresh start: holds the lock
  REQUIRE_MESSAGE(first, why);
  CHECK_FALSE((*first)->found());
  netloop::Fd lock = (*first)->take_lock();
  CHECK(lock.valid());
  auto second = HandoverClient::request(path, {}, &why);
  REQUIRE_FALSE(second);
  CHECK(second.error() == std::errc::device_or_resource_busy);
  CHECK_MESSAGE(why.find("holds") != std::string::npos, why);
  lock = netloop::Fd();  // the first instance exits
  auto third = HandoverClient::request(path, {}, &why);
  REQUIRE_MESSAGE(third, why);
  CHECK_FALSE((*third)->found());
}

// Needs root to make files and processes of another user: reported skipped otherwise.
TEST_CASE("handover client: a socket or a peer of another user is not trusted" *
          doctest::skip(::geteuid() != 0)) {
  TempDir dir("netloop-handover");
  const std::string path = (dir / "h.sock").string();
  ::chmod(dir.path().c_str(), 0777);
  const uid_t other = 54321;
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::setuid(other) < 0) ::_exit(1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || ::listen(fd, 4) < 0)
      ::_exit(1);
    ::sleep(5);
    ::_exit(0);
  }
  struct stat st{};
  REQUIRE(wait_until([&] { return ::stat(path.c_str(), &st) == 0; }, 5s));
  std::this_thread::sleep_for(50ms);  // listening
  std::string why;
  auto by_file = HandoverClient::request(path, {}, &why);
  CHECK_FALSE(by_file);
  CHECK_MESSAGE(why.find("belongs to uid") != std::string::npos, why);
  REQUIRE(::chown(path.c_str(), 0, 0) == 0);  // the file is fine now, the process is not
  auto by_peer = HandoverClient::request(path, {}, &why);
  CHECK_FALSE(by_peer);
  CHECK_MESSAGE(why.find("not this user") != std::string::npos, why);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST_CASE("handover source: after a swap that failed, the old instance's socket settings are back"
#ifndef TCP_DEFER_ACCEPT
          * doctest::skip(true)
#endif
) {
  ServerOptions o = source_opts(1);
  o.listener.defer_accept = netloop::seconds(2);
  OldInstance old(o);
  std::string why;

  auto client = request_when_free(old.path, why);
  REQUIRE_MESSAGE(client, why);
  REQUIRE((*client)->found());
  std::vector<netloop::ListeningSocket> sockets = (*client)->take_sockets();
  auto listener = std::find_if(sockets.begin(), sockets.end(),
                               [](const netloop::ListeningSocket& l) { return !l.datagram; });
  REQUIRE(listener != sockets.end());
  const int fd = listener->fd.get();
  REQUIRE(accept_deferral_seconds(fd) >= 2);
  // A new instance without deferred accepts takes the socket as its own...
  netloop::ListenerOptions plain;
  netloop::TcpListener::apply_socket_options(fd, plain, old.tcp);
  CHECK(accept_deferral_seconds(fd) == 0);
  // ...then goes away without confirming: the old one serves on, deferring again.
  client->reset();
  CHECK(wait_until([&] { return old.not_taken.load() == 1; }, 5s));
  CHECK(accept_deferral_seconds(fd) >= 2);
  CHECK_FALSE(old.server.draining());
  Sock s = connect_to(old.tcp, {.timeout = 5s});
  REQUIRE(s.valid());
  CHECK(echo_once(s.get(), "still") == "still");
}
