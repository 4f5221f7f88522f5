// Poller conformance suite: one set of cases run against every backend this build and
// kernel offer (available_backends()), first on the raw Poller, then through EventLoop
// and IoWatcher. A backend that is not available is reported as SKIPPED, never passed.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>  // doctest prints std::error_code through it
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <cerrno>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netloop/address.hpp"
#include "netloop/error.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/io_watcher.hpp"
#include "netloop/fd.hpp"
#include "netloop/poller.hpp"

using namespace netloop;
using std::chrono::milliseconds;
using std::chrono::seconds;

#define REQUIRE_OK(expr)                                             \
  do {                                                               \
    std::error_code ec_ = (expr).error();                            \
    REQUIRE_MESSAGE(!ec_, #expr << " failed: " << ec_.message());    \
  } while (0)

namespace {

// Runs `body(name)` once per available backend, each in its own SUBCASE named after the
// backend. Backends this build or kernel cannot run are announced as skipped (once per
// test case, on the pass that enters the first available backend).
// NETLOOP_BACKEND=name narrows every case to that backend (meson registers one test per
// backend this way); if this build or kernel cannot run it, the process exits 77, which
// meson reports as skipped rather than passed.
std::vector<BackendInfo> backends_under_test() {
  auto all = available_backends();
  const char* only = std::getenv("NETLOOP_BACKEND");
  if (!only || !*only) return all;
  for (const auto& b : all)
    if (b.name == only) {
      if (!b.available) {
        std::fprintf(stderr, "SKIPPED: backend '%s': %s\n", only, b.reason.c_str());
        std::exit(77);
      }
      return {b};
    }
  std::fprintf(stderr, "NETLOOP_BACKEND=%s names no backend\n", only);
  std::exit(1);
}

template <class F>
void for_each_backend(F&& body) {
  const auto all = backends_under_test();
  bool first = true;
  bool any = false;
  for (const auto& b : all) {
    if (!b.available) continue;
    any = true;
    const bool announce = std::exchange(first, false);
    SUBCASE(b.name.c_str()) {
      if (announce)
        for (const auto& u : all)
          if (!u.available) MESSAGE("SKIPPED on backend '" << u.name << "': " << u.reason);
      INFO("backend: " << b.name);
      body(b.name);
    }
  }
  if (!any) FAIL("no poller backend is available");
}

// select() has no hangup or error sets (exceptfds is out-of-band data): a finished or
// failed socket is reported readable and/or writable, and the next syscall says why.
bool reports_hangup(const std::string& backend) { return backend != "select"; }

// kqueue's read filter says EV_EOF alike for a peer's half-close and its full close, so it
// reports a closed peer to a reader as readable (read() returns 0); hangup comes with
// write interest.
bool reports_hangup_to_readers(const std::string& backend) {
  return reports_hangup(backend) && backend != "kqueue";
}

// The bits a finished (closed, reset or failed) descriptor must show with `interest`.
uint32_t final_bits(const std::string& backend, Interest interest) {
  if (reports_hangup(backend)) return ready::hangup | ready::error;
  return (has(interest, Interest::read) ? ready::readable : 0) |
         (has(interest, Interest::write) ? ready::writable : 0);
}

std::unique_ptr<Poller> make_poller(const std::string& name) {
  std::string why;
  auto p = create_poller(name, &why);
  INFO("create_poller(" << name << "): " << why);
  REQUIRE(p.ok());
  REQUIRE(*p != nullptr);
  CHECK((*p)->name() == name);
  return std::move(*p);
}

std::unique_ptr<EventLoop> make_loop(const std::string& name) {
  std::string why;
  auto r = EventLoop::create(name, &why);
  INFO("EventLoop::create(" << name << "): " << why);
  REQUIRE(r.ok());
  CHECK((*r)->backend_name() == name);
  return std::move(*r);
}

struct Pair {
  Fd a, b;
};

// A nonblocking AF_UNIX stream socketpair.
Pair socket_pair() {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  return {Fd(sv[0]), Fd(sv[1])};
}

struct TcpPair {
  Fd client, server;
};

// A connected loopback TCP pair (127.0.0.1), both ends nonblocking.
TcpPair tcp_pair() {
  Fd lst(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(lst.valid());
  auto any_port = Address::ipv4_loopback(0);
  REQUIRE(::bind(lst.get(), any_port.sockaddr_ptr(), any_port.length()) == 0);
  REQUIRE(::listen(lst.get(), 4) == 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(lst.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  auto bound = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(client.valid());
  REQUIRE(::connect(client.get(), bound.sockaddr_ptr(), bound.length()) == 0);
  Fd server(::accept4(lst.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  REQUIRE(server.valid());
  REQUIRE(set_nonblocking_cloexec(client.get()));
  return {std::move(client), std::move(server)};
}

void put(const Fd& fd, std::string_view s) {
  REQUIRE(::send(fd.get(), s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size()));
}

// Reads everything available now; returns how many bytes (0 when at EOF or empty).
size_t drain(const Fd& fd) {
  char buf[4096];
  size_t total = 0;
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) total += size_t(n);
  return total;
}

std::vector<PollEvent> wait_for(Poller& p, int timeout_ms, size_t capacity = 64) {
  std::vector<PollEvent> ev(capacity);
  auto n = p.wait(ev, timeout_ms);
  INFO("wait: " << n.error().message());
  REQUIRE(n.ok());
  REQUIRE(*n <= capacity);
  ev.resize(*n);
  return ev;
}

// The ready bits reported for `token` (0 if it was not reported). A descriptor must be
// reported at most once per wait.
uint32_t ready_for(const std::vector<PollEvent>& ev, const void* token) {
  uint32_t r = 0;
  int seen = 0;
  for (const auto& e : ev) {
    if (e.token != token) continue;
    r |= e.ready;
    ++seen;
  }
  CHECK(seen <= 1);
  return r;
}

std::string bits(uint32_t r) {
  std::string s;
  if (r & ready::readable) s += "readable ";
  if (r & ready::writable) s += "writable ";
  if (r & ready::hangup) s += "hangup ";
  if (r & ready::error) s += "error ";
  return s.empty() ? "none" : s;
}

auto elapsed_since(Clock::time_point start) { return Clock::now() - start; }

// A loopback TCP port nobody listens on (bound, then closed without listen()).
uint16_t closed_loopback_port() {
  Fd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(probe.valid());
  auto any_port = Address::ipv4_loopback(0);
  REQUIRE(::bind(probe.get(), any_port.sockaddr_ptr(), any_port.length()) == 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).port();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The registry

TEST_CASE("poller registry: the default is available and bad names get helpful errors") {
  const auto all = available_backends();
  REQUIRE_FALSE(all.empty());
  std::set<std::string> names;
  std::string first_available;
  for (const auto& b : all) {
    CAPTURE(b.name);
    CHECK(names.insert(b.name).second);  // each backend listed once
    if (b.available) {
      if (first_available.empty()) first_available = b.name;
    } else {
      CHECK_FALSE(b.reason.empty());  // an unavailable backend says why
    }
  }
  const std::string def = default_backend();
  CHECK(def == first_available);
  CHECK(names.count("poll") == 1);
#ifdef __linux__
  CHECK(def == "epoll");
#endif

  std::string why;
  auto bad = create_poller("no-such-poller", &why);
  CHECK_FALSE(bad.ok());
  INFO("why: " << why);
  CHECK(why.find("no-such-poller") != std::string::npos);
  CHECK(why.find(def) != std::string::npos);  // names one that would work

  for (const auto& b : all) {
    if (b.available) continue;
    CAPTURE(b.name);
    std::string w;
    auto r = create_poller(b.name, &w);
    CHECK_FALSE(r.ok());
    CHECK(w.find(b.name) != std::string::npos);
    CHECK(w.find(def) != std::string::npos);
  }

  std::string loop_why;
  auto loop = EventLoop::create("no-such-poller", &loop_why);
  CHECK_FALSE(loop.ok());
  CHECK_FALSE(loop_why.empty());
}

// ---------------------------------------------------------------------------------------
// The raw Poller contract

TEST_CASE("poller conformance: readable is reported with the caller's token") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto sp = socket_pair();
    char token = 0;
    REQUIRE_OK(p->add(sp.a.get(), Interest::read, &token));
    put(sp.b, "x");
    auto ev = wait_for(*p, 1000);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].token == &token);
    INFO("ready: " << bits(ev[0].ready));
    CHECK((ev[0].ready & ready::readable) != 0);
    CHECK((ev[0].ready & ready::writable) == 0);  // not asked for
    CHECK((ev[0].ready & (ready::hangup | ready::error)) == 0);
  });
}

TEST_CASE("poller conformance: writable is reported for a socket with room to send") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto sp = socket_pair();
    put(sp.b, "unread input must not show: only write interest is registered");
    char token = 0;
    REQUIRE_OK(p->add(sp.a.get(), Interest::write, &token));
    auto ev = wait_for(*p, 1000);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].token == &token);
    INFO("ready: " << bits(ev[0].ready));
    CHECK(ev[0].ready == ready::writable);
  });
}

TEST_CASE("poller conformance: read_write interest reports both in one event") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto sp = socket_pair();
    put(sp.b, "x");
    char token = 0;
    REQUIRE_OK(p->add(sp.a.get(), Interest::read_write, &token));
    auto ev = wait_for(*p, 1000);
    REQUIRE(ev.size() == 1);
    INFO("ready: " << bits(ev[0].ready));
    CHECK(ev[0].ready == (ready::readable | ready::writable));
  });
}

TEST_CASE("poller conformance: with nothing ready, wait(0) returns at once and wait(50) waits") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);

    // Nothing registered at all.
    auto start = Clock::now();
    CHECK(wait_for(*p, 50).empty());
    CHECK(elapsed_since(start) >= milliseconds(40));

    auto sp = socket_pair();
    char token = 0;
    REQUIRE_OK(p->add(sp.a.get(), Interest::read, &token));

    start = Clock::now();
    CHECK(wait_for(*p, 0).empty());
    CHECK(elapsed_since(start) < seconds(1));

    start = Clock::now();
    CHECK(wait_for(*p, 50).empty());
    auto waited = elapsed_since(start);
    CHECK(waited >= milliseconds(40));
    CHECK(waited < seconds(5));

    // Input arriving during a long wait ends it early.
    std::thread writer([&] {
      std::this_thread::sleep_for(milliseconds(50));
      ::send(sp.b.get(), "x", 1, MSG_NOSIGNAL);
    });
    start = Clock::now();
    auto ev = wait_for(*p, 10'000);
    waited = elapsed_since(start);
    writer.join();
    CHECK((ready_for(ev, &token) & ready::readable) != 0);
    CHECK(waited < seconds(8));
  });
}

TEST_CASE("poller conformance: level-triggered: reported on every wait until consumed") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto sp = socket_pair();
    char token = 0;
    REQUIRE_OK(p->add(sp.a.get(), Interest::read, &token));
    put(sp.b, "abc");
    for (int i = 0; i < 3; ++i) {
      CAPTURE(i);
      auto ev = wait_for(*p, 1000);
      CHECK((ready_for(ev, &token) & ready::readable) != 0);
    }
    char c;
    REQUIRE(::read(sp.a.get(), &c, 1) == 1);  // partly read: still readable
    CHECK((ready_for(wait_for(*p, 1000), &token) & ready::readable) != 0);
    CHECK(drain(sp.a) == 2);
    CHECK(wait_for(*p, 0).empty());

    // Writable is level-triggered too.
    REQUIRE_OK(p->modify(sp.a.get(), Interest::write, &token));
    for (int i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK(ready_for(wait_for(*p, 1000), &token) == ready::writable);
    }
  });
}

TEST_CASE("poller conformance: modify replaces the interest and the token") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto sp = socket_pair();
    put(sp.b, "pending input");
    char t1 = 0, t2 = 0, t3 = 0;
    REQUIRE_OK(p->add(sp.a.get(), Interest::read, &t1));
    auto ev = wait_for(*p, 1000);
    CHECK(ready_for(ev, &t1) == ready::readable);

    REQUIRE_OK(p->modify(sp.a.get(), Interest::write, &t2));
    ev = wait_for(*p, 1000);
    CHECK(ev.size() == 1);
    CHECK(ready_for(ev, &t1) == 0);
    CHECK(ready_for(ev, &t2) == ready::writable);  // the pending input is not reported

    REQUIRE_OK(p->modify(sp.a.get(), Interest::read, &t3));
    ev = wait_for(*p, 1000);
    CHECK(ev.size() == 1);
    CHECK(ready_for(ev, &t3) == ready::readable);

    REQUIRE_OK(p->modify(sp.a.get(), Interest::read_write, &t1));
    ev = wait_for(*p, 1000);
    CHECK(ev.size() == 1);
    CHECK(ready_for(ev, &t1) == (ready::readable | ready::writable));
  });
}

TEST_CASE("poller conformance: remove stops events and the descriptor can be added again") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto sp = socket_pair();
    auto other = socket_pair();
    char token = 0, other_token = 0;
    put(sp.b, "x");
    put(other.b, "y");
    REQUIRE_OK(p->add(sp.a.get(), Interest::read, &token));
    REQUIRE_OK(p->add(other.a.get(), Interest::read, &other_token));
    CHECK(wait_for(*p, 1000).size() == 2);

    REQUIRE_OK(p->remove(sp.a.get()));
    auto ev = wait_for(*p, 0);
    CHECK(ready_for(ev, &token) == 0);
    CHECK((ready_for(ev, &other_token) & ready::readable) != 0);  // the other one is intact

    REQUIRE_OK(p->remove(other.a.get()));
    CHECK(wait_for(*p, 0).empty());

    REQUIRE_OK(p->add(sp.a.get(), Interest::read, &token));
    ev = wait_for(*p, 1000);
    CHECK(ev.size() == 1);
    CHECK(ready_for(ev, &token) == ready::readable);
  });
}

TEST_CASE("poller conformance: registration errors leave the registrations intact") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto sp = socket_pair();
    put(sp.b, "x");
    put(sp.a, "y");
    char t1 = 0, t2 = 0;
    REQUIRE_OK(p->add(sp.a.get(), Interest::read, &t1));

    std::error_code ec = p->add(sp.a.get(), Interest::read, &t2).error();
    INFO("add twice: " << ec.message());
    CHECK(bool(ec));
    auto ev = wait_for(*p, 1000);
    CHECK(ev.size() == 1);
    CHECK(ready_for(ev, &t1) == ready::readable);  // the first registration stands
    CHECK(ready_for(ev, &t2) == 0);

    CHECK(p->add(sp.b.get(), Interest::none, &t2).error() == std::errc::invalid_argument);
    CHECK(p->modify(sp.a.get(), Interest::none, &t2).error() == std::errc::invalid_argument);
    ev = wait_for(*p, 1000);
    CHECK(ev.size() == 1);  // sp.b was not registered by the failed add
    CHECK(ready_for(ev, &t1) == ready::readable);

    CHECK_FALSE(p->modify(sp.b.get(), Interest::read, &t2).ok());  // not registered
    CHECK_FALSE(p->remove(sp.b.get()).ok());
    CHECK_FALSE(p->add(-1, Interest::read, &t2).ok());
    CHECK_FALSE(p->modify(-1, Interest::read, &t2).ok());
    CHECK_FALSE(p->remove(-1).ok());

    REQUIRE_OK(p->remove(sp.a.get()));
    CHECK_FALSE(p->remove(sp.a.get()).ok());  // removing twice
    CHECK(wait_for(*p, 0).empty());
  });
}

TEST_CASE("poller conformance: adding a descriptor that is not open fails with EBADF") {
  // IoWatcher::start() promises EBADF "here", at registration, on every backend.
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    int dead;
    {
      auto sp = socket_pair();
      dead = sp.a.get();
    }  // both ends closed: `dead` names no open descriptor now
    REQUIRE(::fcntl(dead, F_GETFD) == -1);
    char token = 0;
    std::error_code ec = p->add(dead, Interest::read, &token).error();
    INFO("add(closed fd): " << (ec ? ec.message() : std::string("succeeded")));
    CHECK(ec == std::errc::bad_file_descriptor);
    if (!ec) {
      auto ev = wait_for(*p, 0);
      INFO("then wait reports: " << bits(ready_for(ev, &token)));
      (void)p->remove(dead);
    }
  });
}

TEST_CASE("poller conformance: a socketpair peer's close is readable and hangup") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto sp = socket_pair();
    char token = 0;
    REQUIRE_OK(p->add(sp.a.get(), Interest::read, &token));
    CHECK(wait_for(*p, 0).empty());
    sp.b.reset();
    uint32_t r = ready_for(wait_for(*p, 1000), &token);
    INFO("ready: " << bits(r));
    CHECK((r & ready::readable) != 0);
    if (reports_hangup_to_readers(name)) CHECK((r & ready::hangup) != 0);
    char c;
    CHECK(::read(sp.a.get(), &c, 1) == 0);  // end of stream

    // Hangup is reported whatever the interest.
    REQUIRE_OK(p->modify(sp.a.get(), Interest::write, &token));
    r = ready_for(wait_for(*p, 1000), &token);
    INFO("ready with write interest: " << bits(r));
    CHECK((r & final_bits(name, Interest::write)) != 0);
    CHECK((r & ready::readable) == 0);
  });
}

TEST_CASE("poller conformance: a TCP peer's half-close is readable, read() returns 0, no hangup") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto tp = tcp_pair();
    char token = 0;
    REQUIRE_OK(p->add(tp.server.get(), Interest::read, &token));
    CHECK(wait_for(*p, 0).empty());

    put(tp.client, "bye");
    REQUIRE(::shutdown(tp.client.get(), SHUT_WR) == 0);
    uint32_t r = 0;
    std::string got;
    // Data and FIN may arrive in separate steps: read until end of stream.
    auto deadline = Clock::now() + seconds(5);
    bool eof = false;
    while (!eof && Clock::now() < deadline) {
      r = ready_for(wait_for(*p, 1000), &token);
      INFO("ready: " << bits(r));
      REQUIRE((r & ready::readable) != 0);
      CHECK((r & (ready::hangup | ready::error)) == 0);
      char buf[16];
      ssize_t n;
      while ((n = ::read(tp.server.get(), buf, sizeof buf)) > 0) got.append(buf, size_t(n));
      eof = n == 0;
    }
    CHECK(eof);
    CHECK(got == "bye");
    // End of stream stays readable (level-triggered) and is still not hangup.
    r = ready_for(wait_for(*p, 1000), &token);
    INFO("ready after EOF: " << bits(r));
    CHECK(r == ready::readable);

    // With only write interest the half-closed socket is just writable.
    REQUIRE_OK(p->modify(tp.server.get(), Interest::write, &token));
    for (int i = 0; i < 2; ++i) {
      r = ready_for(wait_for(*p, 1000), &token);
      INFO("ready with write interest: " << bits(r));
      CHECK(r == ready::writable);
    }
    // And it really can still send: half-close is not the end of the connection.
    put(tp.server, "still here");
    std::string echo;
    deadline = Clock::now() + seconds(5);
    while (echo.size() < 10 && Clock::now() < deadline) {
      char buf[32];
      ssize_t n = ::read(tp.client.get(), buf, sizeof buf);
      if (n > 0) echo.append(buf, size_t(n));
      else std::this_thread::sleep_for(milliseconds(2));
    }
    CHECK(echo == "still here");
  });
}

TEST_CASE("poller conformance: a TCP reset is reported as hangup or error, whatever the interest") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto tp = tcp_pair();
    char token = 0;
    REQUIRE_OK(p->add(tp.server.get(), Interest::write, &token));
    CHECK(ready_for(wait_for(*p, 1000), &token) == ready::writable);

    linger lg{1, 0};  // close() now sends a reset
    REQUIRE(::setsockopt(tp.client.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    tp.client.reset();

    uint32_t r = 0;
    auto deadline = Clock::now() + seconds(5);
    while (Clock::now() < deadline) {
      r = ready_for(wait_for(*p, 200), &token);
      if (r & (ready::hangup | ready::error)) break;
      if (!reports_hangup(name) && (r & final_bits(name, Interest::write))) {
        // select: writable is all it can say; the next send() must report the reset.
        int rc = int(::send(tp.server.get(), "z", 1, MSG_NOSIGNAL));
        if (rc < 0 && (errno == ECONNRESET || errno == EPIPE)) break;
      }
      std::this_thread::sleep_for(milliseconds(5));  // the reset is still on its way
    }
    INFO("ready: " << bits(r));
    CHECK((r & final_bits(name, Interest::write)) != 0);
  });
}

TEST_CASE("poller conformance: a refused nonblocking connect reports error or hangup with write interest") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    auto target = Address::ipv4_loopback(closed_loopback_port());
    Fd s;
    bool in_progress = false;
    for (int attempt = 0; attempt < 5 && !in_progress; ++attempt) {
      s.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      REQUIRE(s.valid());
      int rc = ::connect(s.get(), target.sockaddr_ptr(), target.length());
      REQUIRE_MESSAGE(rc != 0, "connect to closed port " << target.to_string() << " succeeded");
      if (errno == EINPROGRESS) in_progress = true;
      else REQUIRE_MESSAGE(errno == ECONNREFUSED, "connect: " << std::strerror(errno));
    }
    if (!in_progress) {
      MESSAGE("SKIPPED: the kernel refused every connect synchronously; nothing to poll for");
      return;
    }
    char token = 0;
    REQUIRE_OK(p->add(s.get(), Interest::write, &token));
    uint32_t r = 0;
    auto deadline = Clock::now() + seconds(5);
    while (r == 0 && Clock::now() < deadline) r = ready_for(wait_for(*p, 200), &token);
    INFO("ready: " << bits(r));
    CHECK((r & final_bits(name, Interest::write)) != 0);
    int err = 0;
    socklen_t len = sizeof err;
    REQUIRE(::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0);
#ifdef __linux__
    if (name == "kqueue" && err == 0) {
      // libkqueue reads SO_ERROR itself to fill the event, which clears it.
      MESSAGE("kqueue on Linux (libkqueue): SO_ERROR already consumed by the emulation");
      return;
    }
#endif
    CHECK(err == ECONNREFUSED);
  });
}

TEST_CASE("poller conformance: with more ready descriptors than out.size(), none starves") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    constexpr int kReady = 300;  // well under FD_SETSIZE with both ends open
    std::vector<Pair> pairs;
    std::vector<char> tokens(kReady);
    for (int i = 0; i < kReady; ++i) {
      pairs.push_back(socket_pair());
      put(pairs.back().b, "x");  // never read: level-triggered, ready on every wait
      REQUIRE_OK(p->add(pairs.back().a.get(), Interest::read, &tokens[i]));
    }
    std::set<const void*> seen;
    for (int round = 0; round < 3 * kReady / 32 && seen.size() < size_t(kReady); ++round)
      for (const auto& e : wait_for(*p, 1000, 32)) seen.insert(e.token);
    CHECK(seen.size() == size_t(kReady));  // each was reported within a few full batches
  });
}

TEST_CASE("poller conformance: wait() reports at most out.size() events") {
  for_each_backend([](const std::string& name) {
    auto p = make_poller(name);
    std::vector<Pair> pairs;
    char tokens[3] = {};
    for (int i = 0; i < 3; ++i) {
      pairs.push_back(socket_pair());
      put(pairs.back().b, "x");
      REQUIRE_OK(p->add(pairs.back().a.get(), Interest::read, &tokens[i]));
    }
    auto ev = wait_for(*p, 1000, 2);
    CHECK(ev.size() == 2);
    for (const auto& e : ev) {
      CHECK((e.token >= tokens && e.token < tokens + 3));
      CHECK(e.ready == ready::readable);
    }
    if (ev.size() == 2) CHECK(ev[0].token != ev[1].token);
    ev = wait_for(*p, 1000, 8);
    CHECK(ev.size() == 3);
    ev = wait_for(*p, 1000, 1);
    CHECK(ev.size() == 1);
  });
}

TEST_CASE("poller conformance: 5,000 registered descriptors, exactly the ready ones are reported") {
  constexpr int kPairs = 2500;
  rlimit rl{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
  const rlim_t need = 2 * kPairs + 256;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) {
      rl.rlim_cur = need;
      REQUIRE(::setrlimit(RLIMIT_NOFILE, &rl) == 0);
    } else {
      MESSAGE("SKIPPED: RLIMIT_NOFILE hard limit " << rl.rlim_max << " is below " << need);
      return;
    }
  }

  for_each_backend([&](const std::string& name) {
    auto p = make_poller(name);
    std::vector<Pair> pairs;
    pairs.reserve(kPairs);
    std::vector<char> tokens(2 * kPairs);
    int add_failures = 0;
    for (int i = 0; i < kPairs; ++i) {
      pairs.push_back(socket_pair());
      add_failures += !p->add(pairs[i].a.get(), Interest::read, &tokens[2 * i]).ok();
      add_failures += !p->add(pairs[i].b.get(), Interest::read, &tokens[2 * i + 1]).ok();
    }
    if (name == "select") {
      // select() cannot take descriptors at or above FD_SETSIZE: each is refused with an
      // error naming the backends to use instead, and the rest keep working.
      for (auto& pr : pairs)
        if (pr.b.get() >= FD_SETSIZE) {
          auto ec = p->add(pr.b.get(), Interest::read, nullptr).error();
          CHECK(ec == make_error(Errc::fd_too_large_for_select));
          CHECK(ec.message().find("FD_SETSIZE") != std::string::npos);
          CHECK(ec.message().find("epoll") != std::string::npos);
          break;
        }
      CHECK(add_failures > 0);
      return;
    }
    REQUIRE(add_failures == 0);
    CHECK(wait_for(*p, 0, 8192).empty());

    // Make a few ready, spread over the table (both ends of the pairs).
    std::set<const void*> expect;
    for (int i : {0, 17, 1234, 2499}) {
      put(pairs[i].b, "x");
      expect.insert(&tokens[2 * i]);
    }
    put(pairs[42].a, "y");
    expect.insert(&tokens[2 * 42 + 1]);

    for (int round = 0; round < 2; ++round) {  // level-triggered: the same set twice
      CAPTURE(round);
      auto ev = wait_for(*p, 1000, 8192);
      std::set<const void*> got;
      for (const auto& e : ev) {
        CHECK(e.ready == ready::readable);
        CHECK(got.insert(e.token).second);
      }
      CHECK(ev.size() == expect.size());
      CHECK(got == expect);
    }

    CHECK(drain(pairs[17].a) == 1);
    expect.erase(&tokens[2 * 17]);
    auto ev = wait_for(*p, 1000, 8192);
    std::set<const void*> got;
    for (const auto& e : ev) got.insert(e.token);
    CHECK(got == expect);

    int remove_failures = 0;
    for (auto& pr : pairs) {
      remove_failures += !p->remove(pr.a.get()).ok();
      remove_failures += !p->remove(pr.b.get()).ok();
    }
    CHECK(remove_failures == 0);
    CHECK(wait_for(*p, 0, 8192).empty());
  });
}

// ---------------------------------------------------------------------------------------
// Through EventLoop and IoWatcher

TEST_CASE("event loop conformance: an IoWatcher's callback gets the ready bits") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    auto sp = socket_pair();
    int calls = 0;
    uint32_t last = 0;
    IoWatcher w(*loop, [&](uint32_t r) {
      ++calls;
      last = r;
    });
    REQUIRE_OK(w.start(sp.a.get(), Interest::read));
    CHECK(w.active());
    CHECK(w.fd() == sp.a.get());
    CHECK(w.interest() == Interest::read);
    CHECK(&w.loop() == loop.get());

    loop->run_once(0);
    CHECK(calls == 0);

    put(sp.b, "x");
    loop->run_once(1000);
    CHECK(calls == 1);
    INFO("last: " << bits(last));
    CHECK(last == ready::readable);

    w.set_interest(Interest::read_write);
    loop->run_once(1000);
    CHECK(calls == 2);
    CHECK(last == (ready::readable | ready::writable));

    w.set_interest(Interest::read);
    CHECK(drain(sp.a) == 1);
    sp.b.reset();  // peer closes
    loop->run_once(1000);
    CHECK(calls == 3);
    CHECK((last & ready::readable) != 0);
    if (reports_hangup_to_readers(name)) CHECK((last & ready::hangup) != 0);

    w.stop();
    CHECK_FALSE(w.active());
    loop->run_once(0);
    CHECK(calls == 3);

    IoWatcher bad(*loop, [](uint32_t) {});
    CHECK_FALSE(bad.start(-1, Interest::read).ok());
    CHECK_FALSE(bad.active());
  });
}

TEST_CASE("event loop conformance: a watcher stopped earlier in the same batch is not called") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    auto p1 = socket_pair();
    auto p2 = socket_pair();
    put(p1.b, "x");
    put(p2.b, "x");  // both ready before the wait: one batch
    int c1 = 0, c2 = 0;
    IoWatcher* w1p = nullptr;
    IoWatcher* w2p = nullptr;
    IoWatcher w1(*loop, [&](uint32_t) {
      ++c1;
      w2p->stop();
    });
    IoWatcher w2(*loop, [&](uint32_t) {
      ++c2;
      w1p->stop();
    });
    w1p = &w1;
    w2p = &w2;
    REQUIRE_OK(w1.start(p1.a.get(), Interest::read));
    REQUIRE_OK(w2.start(p2.a.get(), Interest::read));
    loop->run_once(1000);
    CHECK(c1 + c2 == 1);  // whichever ran first stopped the other
    loop->run_once(0);    // the survivor's input is unread: it is called again
    CHECK(c1 + c2 == 2);
    CHECK((c1 == 0 || c2 == 0));
  });
}

TEST_CASE("event loop conformance: a watcher destroyed earlier in the same batch is not called") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    auto p1 = socket_pair();
    auto p2 = socket_pair();
    put(p1.b, "x");
    put(p2.b, "x");
    int c1 = 0, c2 = 0;
    std::unique_ptr<IoWatcher> w1, w2;
    w1 = std::make_unique<IoWatcher>(*loop, [&](uint32_t) {
      ++c1;
      w2.reset();  // destroyed mid-batch: a stale event would be a use after free
    });
    w2 = std::make_unique<IoWatcher>(*loop, [&](uint32_t) {
      ++c2;
      w1.reset();
    });
    REQUIRE_OK(w1->start(p1.a.get(), Interest::read));
    REQUIRE_OK(w2->start(p2.a.get(), Interest::read));
    loop->run_once(1000);
    CHECK(c1 + c2 == 1);
    CHECK((w1 == nullptr) != (w2 == nullptr));
  });
}

TEST_CASE("event loop conformance: a watcher whose interest was dropped earlier in the batch is not called") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    auto p1 = socket_pair();
    auto p2 = socket_pair();
    put(p1.b, "x");
    put(p2.b, "x");
    int c1 = 0, c2 = 0;
    IoWatcher* w1p = nullptr;
    IoWatcher* w2p = nullptr;
    IoWatcher w1(*loop, [&](uint32_t) {
      ++c1;
      w2p->set_interest(Interest::none);
    });
    IoWatcher w2(*loop, [&](uint32_t) {
      ++c2;
      w1p->set_interest(Interest::none);
    });
    w1p = &w1;
    w2p = &w2;
    REQUIRE_OK(w1.start(p1.a.get(), Interest::read));
    REQUIRE_OK(w2.start(p2.a.get(), Interest::read));
    loop->run_once(1000);
    CHECK(c1 + c2 == 1);
    loop->run_once(0);
    CHECK(c1 + c2 == 2);
    CHECK((c1 == 0 || c2 == 0));
  });
}

TEST_CASE("event loop conformance: a descriptor closed and its number reused within the batch gets no stale event") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    auto p1 = socket_pair();
    auto p2 = socket_pair();
    Fd* fds[2] = {&p1.a, &p2.a};    // watched ends
    Fd* peers[2] = {&p1.b, &p2.b};  // where to write to make them readable
    int calls[2] = {0, 0};
    int swapped = -1;  // which watched descriptor was replaced in the batch
    std::unique_ptr<IoWatcher> w[2];
    std::unique_ptr<IoWatcher> fresh;
    int fresh_calls = 0;

    // Puts a new, idle socket under descriptor number `number` (dup3 closes the old
    // socket and reuses the number atomically); its peer replaces peers[k].
    auto reuse_number = [&](int k) {
      int number = fds[k]->get();
      auto np = socket_pair();
      REQUIRE(::dup3(np.a.get(), number, O_CLOEXEC) == number);
      *peers[k] = std::move(np.b);
    };

    // Phase 1: the *same* watcher object (same token as its stale batch event) is
    // stopped, its descriptor replaced, and restarted on the reused number.
    put(*peers[0], "x");
    put(*peers[1], "x");  // both ready before the wait: one batch
    for (int k = 0; k < 2; ++k) {
      w[k] = std::make_unique<IoWatcher>(*loop, [&, k](uint32_t) {
        ++calls[k];
        if (swapped >= 0) return;
        int o = 1 - k;
        w[o]->stop();
        reuse_number(o);
        swapped = o;
        REQUIRE_OK(w[o]->start(fds[o]->get(), Interest::read));
      });
      REQUIRE_OK(w[k]->start(fds[k]->get(), Interest::read));
    }
    loop->run_once(1000);
    REQUIRE(swapped >= 0);
    int survivor = 1 - swapped;
    CHECK(calls[survivor] == 1);
    CHECK(calls[swapped] == 0);  // its batch event belonged to the old socket

    loop->run_once(0);  // the reused number is idle: still nothing for it
    CHECK(calls[swapped] == 0);
    CHECK(calls[survivor] == 2);  // unread input: level-triggered

    put(*peers[swapped], "z");  // now the new socket really is readable
    loop->run_once(1000);
    CHECK(calls[swapped] == 1);

    // Phase 2: the watcher is destroyed and a brand-new watcher takes the reused number.
    w[0].reset();
    w[1].reset();
    CHECK(drain(*fds[0]) == 1);
    CHECK(drain(*fds[1]) == 1);
    put(*peers[0], "x");
    put(*peers[1], "x");
    calls[0] = calls[1] = 0;
    swapped = -1;
    for (int k = 0; k < 2; ++k) {
      w[k] = std::make_unique<IoWatcher>(*loop, [&, k](uint32_t) {
        ++calls[k];
        if (swapped >= 0) return;
        int o = 1 - k;
        w[o].reset();  // stopped and destroyed
        reuse_number(o);
        swapped = o;
        fresh = std::make_unique<IoWatcher>(*loop, [&](uint32_t) { ++fresh_calls; });
        REQUIRE_OK(fresh->start(fds[o]->get(), Interest::read));
      });
      REQUIRE_OK(w[k]->start(fds[k]->get(), Interest::read));
    }
    loop->run_once(1000);
    REQUIRE(swapped >= 0);
    CHECK(calls[0] + calls[1] == 1);
    CHECK(fresh_calls == 0);
    loop->run_once(0);
    CHECK(fresh_calls == 0);
    put(*peers[swapped], "z");
    loop->run_once(1000);
    CHECK(fresh_calls == 1);
    fresh.reset();
    w[0].reset();
    w[1].reset();
  });
}

TEST_CASE("event loop conformance: set_interest read->none->read before the next wait still works") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    auto sp = socket_pair();
    put(sp.b, "x");
    int calls = 0;
    uint32_t last = 0;
    IoWatcher w(*loop, [&](uint32_t r) {
      ++calls;
      last = r;
    });
    REQUIRE_OK(w.start(sp.a.get(), Interest::read));

    // A flip that flips back before the wait: as if nothing happened.
    w.set_interest(Interest::none);
    CHECK(w.interest() == Interest::none);
    CHECK(w.active());
    w.set_interest(Interest::read);
    CHECK(w.interest() == Interest::read);
    loop->run_once(1000);
    CHECK(calls == 1);
    CHECK(last == ready::readable);

    // Many flips, ending on read.
    for (int i = 0; i < 100; ++i) {
      w.set_interest(Interest::none);
      w.set_interest(i % 2 ? Interest::write : Interest::read_write);
      w.set_interest(Interest::read);
    }
    loop->run_once(1000);
    CHECK(calls == 2);
    CHECK(last == ready::readable);

    // None across a wait: nothing is delivered while input waits...
    w.set_interest(Interest::none);
    loop->run_once(50);
    CHECK(calls == 2);
    // ...and read again brings it back.
    w.set_interest(Interest::read);
    loop->run_once(1000);
    CHECK(calls == 3);
    CHECK(last == ready::readable);

    // The same flip from inside the callback.
    IoWatcher* self = &w;
    int inner = 0;
    IoWatcher v(*loop, [&](uint32_t) {
      ++inner;
      self->set_interest(Interest::none);
      self->set_interest(Interest::read);
    });
    auto other = socket_pair();
    put(other.b, "y");
    REQUIRE_OK(v.start(other.a.get(), Interest::read));
    self = &v;
    loop->run_once(1000);
    loop->run_once(1000);
    CHECK(inner == 2);
  });
}

TEST_CASE("event loop conformance: timers fire (run_after, run_every, cancel_timer, restart_timer)") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    loop->run_once(0);  // refresh the cached clock
    const auto start = Clock::now();
    int once = 0, every = 0, cancelled_runs = 0, restarted_runs = 0;
    Clock::time_point once_at{}, restarted_at{};
    loop->run_after(milliseconds(50), [&] {
      ++once;
      once_at = Clock::now();
    });
    TimerId cancelled = loop->run_after(milliseconds(20), [&] { ++cancelled_runs; });
    TimerId restarted = loop->run_after(milliseconds(10), [&] {
      ++restarted_runs;
      restarted_at = Clock::now();
    });
    TimerId rep{};
    bool cancel_from_inside = false;
    rep = loop->run_every(milliseconds(10), [&] {
      if (++every == 3) cancel_from_inside = loop->cancel_timer(rep);
    });
    CHECK(bool(cancelled));
    CHECK(loop->timer_pending(cancelled));
    CHECK(loop->cancel_timer(cancelled));
    CHECK_FALSE(loop->timer_pending(cancelled));
    CHECK_FALSE(loop->cancel_timer(cancelled));
    CHECK(loop->restart_timer(restarted, milliseconds(80)));

    auto deadline = Clock::now() + seconds(10);
    while ((once == 0 || every < 3 || restarted_runs == 0) && Clock::now() < deadline)
      loop->run_once(100);
    // Some more time: what was cancelled stays silent, what repeated has stopped.
    auto settle = Clock::now() + milliseconds(60);
    while (Clock::now() < settle) loop->run_once(20);

    CHECK(once == 1);
    CHECK(every == 3);
    CHECK(cancel_from_inside);
    CHECK_FALSE(loop->timer_pending(rep));
    CHECK(cancelled_runs == 0);
    CHECK(restarted_runs == 1);
    CHECK(once_at - start >= milliseconds(40));
    CHECK(restarted_at - start >= milliseconds(70));  // moved from 10 ms to 80 ms
  });
}

TEST_CASE("event loop conformance: post() from another thread wakes a blocked run()") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    bool timed_out = false;
    loop->run_after(seconds(20), [&] {  // safety net: the test must end
      timed_out = true;
      loop->stop();
    });
    loop->run_once(0);
    const auto iterations_before = loop->iterations();
    std::atomic<bool> ran{false};
    std::thread::id ran_on;
    std::thread poster([&] {
      std::this_thread::sleep_for(milliseconds(100));
      loop->post([&] {
        ran_on = std::this_thread::get_id();
        ran = true;
        loop->stop();
      });
    });
    const auto start = Clock::now();
    loop->run();
    const auto took = elapsed_since(start);
    poster.join();
    CHECK(ran.load());
    CHECK_FALSE(timed_out);
    CHECK(ran_on == std::this_thread::get_id());  // posted work runs on the loop thread
    CHECK(took < seconds(15));
    // Blocked in the wait, not spinning until the post arrived.
    CHECK(loop->iterations() - iterations_before <= 5);
  });
}

TEST_CASE("event loop conformance: posts from several threads all run once, in order per thread") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    constexpr int kThreads = 4;
    constexpr int kPerThread = 2000;
    std::vector<std::vector<int>> seen(kThreads);
    int total = 0;
    bool timed_out = false;
    loop->run_after(seconds(30), [&] {
      timed_out = true;
      loop->stop();
    });
    std::vector<std::thread> producers;
    for (int t = 0; t < kThreads; ++t) {
      producers.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i)
          loop->post([&, t, i] {
            seen[t].push_back(i);
            if (++total == kThreads * kPerThread) loop->stop();
          });
      });
    }
    loop->run();
    for (auto& th : producers) th.join();
    CHECK_FALSE(timed_out);
    CHECK(total == kThreads * kPerThread);
    for (int t = 0; t < kThreads; ++t) {
      CAPTURE(t);
      REQUIRE(seen[t].size() == size_t(kPerThread));
      CHECK(std::is_sorted(seen[t].begin(), seen[t].end()));
      CHECK(std::adjacent_find(seen[t].begin(), seen[t].end()) == seen[t].end());
    }
  });
}

TEST_CASE("event loop conformance: stop() from another thread makes run() return") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    bool timed_out = false;
    loop->run_after(seconds(20), [&] {
      timed_out = true;
      loop->stop();
    });
    std::atomic<bool> running{false};
    loop->post([&] { running = true; });  // runs once run() has started
    std::thread stopper([&] {
      for (int i = 0; i < 20'000 && !running; ++i) std::this_thread::sleep_for(milliseconds(1));
      std::this_thread::sleep_for(milliseconds(50));  // let the loop block in its wait
      loop->stop();
    });
    const auto start = Clock::now();
    loop->run();
    const auto took = elapsed_since(start);
    stopper.join();
    CHECK(running.load());
    CHECK_FALSE(timed_out);
    CHECK(took < seconds(15));

    // A stop() that comes before run() makes run() return at once...
    std::thread early([&] { loop->stop(); });
    early.join();
    const auto start2 = Clock::now();
    loop->run();
    CHECK_FALSE(timed_out);
    CHECK(elapsed_since(start2) < seconds(5));
    // ...and is used up: the next run() runs until the next stop().
    bool ran_again = false;
    loop->post([&] {
      ran_again = true;
      loop->stop();
    });
    loop->run();
    CHECK(ran_again);
    CHECK_FALSE(timed_out);
  });
}

TEST_CASE("event loop conformance: on_signal(SIGUSR1) runs the callback on the loop") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    int calls = 0;
    std::thread::id ran_on;
    REQUIRE_OK(loop->on_signal(SIGUSR1, [&] {
      ++calls;
      ran_on = std::this_thread::get_id();
    }));
    {
      // Only one loop per process handles signals.
      auto other = make_loop(name);
      CHECK(other->on_signal(SIGUSR2, [] {}).error() == std::errc::device_or_resource_busy);
    }
    CHECK(loop->on_signal(0, [] {}).error() == std::errc::invalid_argument);

    REQUIRE(::raise(SIGUSR1) == 0);
    CHECK(calls == 0);  // the handler only wakes the loop; the callback runs there
    auto deadline = Clock::now() + seconds(10);
    while (calls == 0 && Clock::now() < deadline) loop->run_once(200);
    CHECK(calls == 1);
    CHECK(ran_on == std::this_thread::get_id());

    REQUIRE(::raise(SIGUSR1) == 0);
    REQUIRE(::raise(SIGUSR1) == 0);
    deadline = Clock::now() + seconds(10);
    while (calls < 3 && Clock::now() < deadline) loop->run_once(200);
    CHECK(calls == 3);
    // The loop's destruction gives the signal back (the next backend's loop takes it).
  });
}

TEST_CASE("event loop conformance: an idle loop sleeps instead of spinning") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);
    loop->run_once(0);
    auto before = loop->iterations();
    auto start = Clock::now();
    loop->run_once(200);
    auto took = elapsed_since(start);
    CHECK(loop->iterations() == before + 1);
    CHECK(took >= milliseconds(150));
    CHECK(took < seconds(5));

    // run() with only a timer ahead: a handful of iterations and almost no CPU.
    before = loop->iterations();
    rusage ru0{}, ru1{};
    REQUIRE(::getrusage(RUSAGE_THREAD, &ru0) == 0);
    loop->run_after(milliseconds(300), [&] { loop->stop(); });
    start = Clock::now();
    loop->run();
    took = elapsed_since(start);
    REQUIRE(::getrusage(RUSAGE_THREAD, &ru1) == 0);
    auto cpu_us = [](const rusage& r) {
      return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1'000'000L + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
    };
    CHECK(took >= milliseconds(250));
    CHECK(loop->iterations() - before <= 10);
    CHECK(cpu_us(ru1) - cpu_us(ru0) < 150'000);
  });
}

namespace {
struct Tracked final : Disposable {
  explicit Tracked(bool& gone) : gone(gone) {}
  ~Tracked() override { gone = true; }
  bool& gone;
};
}  // namespace

TEST_CASE("event loop conformance: dispose_later destroys after the iteration") {
  for_each_backend([](const std::string& name) {
    auto loop = make_loop(name);

    // From a timer callback: alive through the deferred work, gone once run_once returns.
    {
      bool gone = false;
      std::optional<bool> gone_after_call, gone_in_defer;
      loop->run_after(milliseconds(0), [&] {
        loop->dispose_later(std::make_unique<Tracked>(gone));
        gone_after_call = gone;
        loop->defer([&] { gone_in_defer = gone; });
      });
      auto deadline = Clock::now() + seconds(5);
      while (!gone_after_call && Clock::now() < deadline) loop->run_once(100);
      REQUIRE(gone_after_call.has_value());
      CHECK_FALSE(*gone_after_call);
      REQUIRE(gone_in_defer.has_value());
      CHECK_FALSE(*gone_in_defer);
      CHECK(gone);
    }
    // From one watcher callback: still alive for the next callback of the same batch.
    {
      auto p1 = socket_pair();
      auto p2 = socket_pair();
      put(p1.b, "x");
      put(p2.b, "x");
      bool gone = false;
      bool disposed = false;
      std::optional<bool> seen_by_second;
      auto cb = [&](uint32_t) {
        if (!disposed) {
          loop->dispose_later(std::make_unique<Tracked>(gone));
          disposed = true;
        } else if (!seen_by_second) {
          seen_by_second = gone;
        }
      };
      IoWatcher w1(*loop, cb), w2(*loop, cb);
      REQUIRE_OK(w1.start(p1.a.get(), Interest::read));
      REQUIRE_OK(w2.start(p2.a.get(), Interest::read));
      loop->run_once(1000);
      CHECK(disposed);
      REQUIRE(seen_by_second.has_value());
      CHECK_FALSE(*seen_by_second);
      CHECK(gone);
    }
    // Handed over outside any iteration: the next iteration does not block and frees it.
    {
      bool gone = false;
      loop->dispose_later(std::make_unique<Tracked>(gone));
      CHECK_FALSE(gone);
      auto start = Clock::now();
      loop->run_once(5000);
      CHECK(gone);
      CHECK(elapsed_since(start) < milliseconds(2500));
    }
  });
}

// Last in the file on purpose: under ASan a failure here aborts the process, and the
// cases above should have run by then.
TEST_CASE("poller registry: an empty name selects the default backend") {
  const std::string def = default_backend();
  std::string why;
  auto p = create_poller("", &why);
  INFO("why: " << why);
  REQUIRE(p.ok());
  CHECK((*p)->name() == def);

  auto loop = EventLoop::create();  // the default argument is the empty name
  REQUIRE(loop.ok());
  CHECK((*loop)->backend_name() == def);
  auto loop2 = EventLoop::create("");
  REQUIRE(loop2.ok());
  CHECK((*loop2)->backend_name() == def);
}
