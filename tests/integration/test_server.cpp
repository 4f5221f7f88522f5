// netloop::Server on loopback: N loops on N threads, each with its own SO_REUSEPORT
// listener (or, with reuse_port = false, one acceptor on loop 0 handing connections to
// the loops in turn); connections and datagrams spread across loops; graceful drain
// (stops accepting at once, idle connections closed, in-flight responses complete,
// run() returns), the drain timeout, stop(); max_connections shared across loops
// (refused at once, an HTTP 503 with the refusal handler); exact totals() after a
// scripted load, before and after the loops have finished, and read while loops run;
// handle_signals() (SIGTERM drains, SIGUSR1 calls back, a second SIGTERM stops, whichever
// loop is still busy); a connection handed off just as a drain begins.
//
// Backends: every usable one (epoll, io_uring, poll, select) for the cases where the
// poller matters (spreading, UDP, drain, stop, max_connections); NETLOOP_TEST_BACKENDS
// narrows the list. Ordering-sensitive cases pin epoll.
//
// The server runs on a background thread (Server::run() on loop 0 there, the other loops
// on threads of their own); clients are plain blocking sockets with timeouts.
#include "support.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <arpa/inet.h>
#include <csignal>
#include <sys/resource.h>

#include "echo/udp_echo.hpp"
#include "http/http_handler.hpp"
#include "http/http_responder.hpp"
#include "netloop/server.hpp"

using namespace nltest;
namespace fs = std::filesystem;
using netloop::Address;
using netloop::Server;
using netloop::ServerOptions;
using netloop::ServerTotals;
using netloop::StreamService;

namespace {

// ---------------------------------------------------------------------------------------
// Running a Server on a background thread

// Server::run() on its own thread (it runs loop 0 there and starts the other loops'
// threads); remembers when run() returned. The destructor stops and joins.
class Running {
 public:
  explicit Running(Server& s) : s_(s) {
    t_ = std::thread([this] {
      s_.run();
      returned_at_ = SteadyClock::now();
      returned_.store(true);
    });
  }
  ~Running() { join(); }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;

  bool returned() const { return returned_.load(); }
  // Waits at most `timeout` for run() to return.
  bool wait_returned(std::chrono::milliseconds timeout) {
    return wait_until([this] { return returned(); }, timeout);
  }
  SteadyClock::time_point returned_at() const { return returned_at_; }  // after returned()
  void join() {
    if (!t_.joinable()) return;
    if (!returned()) s_.stop();
    t_.join();
  }

 private:
  Server& s_;
  std::thread t_;
  std::atomic<bool> returned_{false};
  SteadyClock::time_point returned_at_;
};

// Options for a test server (assigned field by field: designated initializers would leave
// `listener` and `udp` to -Wmissing-field-initializers).
ServerOptions opts(size_t threads, bool reuse_port = true, const std::string& backend = "") {
  ServerOptions o;
  o.threads = threads;
  o.reuse_port = reuse_port;
  o.poller = backend;
  return o;
}

ServerOptions with_drain(ServerOptions o, netloop::Duration d) {
  o.drain_timeout = d;
  return o;
}

ServerOptions with_max(ServerOptions o, size_t max) {
  o.max_connections = max;
  return o;
}

long ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return long(std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count());
}
long ms_since(SteadyClock::time_point t) { return ms_between(t, SteadyClock::now()); }

// Calls drain() (or stop()) from a thread of its own, as a signal handler or an admin
// thread would, and waits for that call to return.
void from_another_thread(const std::function<void()>& fn) {
  std::thread t(fn);
  t.join();
}

// The backends a multi-loop server is tried on: every usable one (epoll, io_uring, poll,
// select here); NETLOOP_TEST_BACKENDS=epoll,poll narrows it.
std::vector<std::string> server_backends() {
  std::vector<std::string> all = usable_backends();
  const char* only = std::getenv("NETLOOP_TEST_BACKENDS");
  if (!only || !*only) return all;
  std::vector<std::string> out;
  for (const auto& b : all)
    if (("," + std::string(only) + ",").find("," + b + ",") != std::string::npos) out.push_back(b);
  return out;
}

bool ipv6_loopback_works() {
  Sock s(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return false;
  Address a = Address::ipv6_loopback(0);
  return ::bind(s.get(), a.sockaddr_ptr(), a.length()) == 0;
}

// The inodes of this process's sockets (/proc/self/fd links "socket:[N]").
std::set<std::string> own_socket_inodes() {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) out.insert(target.substr(8, target.size() - 9));
  }
  return out;
}

// This process's sockets bound to `a`'s family and port: listening TCP sockets, or UDP
// sockets. Asked of each descriptor (getsockname), not read from /proc/net/*: that file
// is read a page at a time and lines repeat or go missing while other processes (tests
// run side by side) open and close sockets. How many loops really serve the one port.
size_t own_sockets(const Address& a, bool udp) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = std::atoi(e.path().filename().c_str());
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) continue;  // not a socket
    if (type != (udp ? SOCK_DGRAM : SOCK_STREAM)) continue;
    len = sizeof listening;
    if (!udp && (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening))
      continue;
    sockaddr_storage ss{};
    len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) continue;
    Address local = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    if (local.family() == a.family() && local.port() == a.port()) ++n;
  }
  return n;
}

// `a` as /proc/net/* prints a local address: the address's 32-bit words in memory
// order, each as %08X, then ":" and the port ("0100007F:1F90" for 127.0.0.1:8080 here).
std::string proc_net_address(const Address& a) {
  const sockaddr* sa = a.sockaddr_ptr();
  const unsigned char* raw = a.is_ipv6()
      ? reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr
      : reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
  std::string out;
  char word[16];
  for (size_t i = 0; i < (a.is_ipv6() ? 16u : 4u); i += 4) {
    uint32_t w;
    std::memcpy(&w, raw + i, 4);
    std::snprintf(word, sizeof word, "%08X", unsigned(w));
    out += word;
  }
  std::snprintf(word, sizeof word, ":%04X", unsigned(a.port()));
  return out + word;
}

// Other processes' sockets in /proc/net/{tcp,tcp6,udp,udp6} bound to `a` (address and
// port) in state `st` (0A: TCP LISTEN; 07: an unconnected UDP socket), a line each. (The
// file's lines can repeat or go missing while it changes; a socket that is not there
// never shows.)
std::string foreign_sockets(const Address& a, bool udp, const char* st) {
  std::string file = std::string("/proc/net/") + (udp ? "udp" : "tcp") + (a.is_ipv6() ? "6" : "");
  std::ifstream in(file);
  if (!in) return {};
  const std::string want = proc_net_address(a);
  const std::set<std::string> mine = own_socket_inodes();
  std::string line, out;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    // sl local remote st tx:rx tr:when retrnsmt uid timeout inode
    std::istringstream fields(line);
    std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
    fields >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
    if (local != want || state != st) continue;
    if (!mine.count(inode)) out += line + "\n";
  }
  return out;
}

// Pattern bytes of a response of `n` bytes: position-dependent, so a lost, repeated or
// reordered piece shows.
std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char((i * 131 + (i >> 12) * 7 + 3) & 0xff);
  return s;
}

// Reads exactly `n` bytes in reads of at most `chunk` bytes with `pause` between them (a
// slow client); returns what arrived before EOF, error or timeout if that is fewer.
std::string read_slowly(int fd, size_t n, size_t chunk, std::chrono::milliseconds pause) {
  std::string out;
  std::vector<char> buf(chunk);
  while (out.size() < n) {
    ssize_t r = ::recv(fd, buf.data(), std::min(chunk, n - out.size()), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buf.data(), size_t(r));
    std::this_thread::sleep_for(pause);
  }
  return out;
}

// A datagram sent from a connected UDP socket of its own, and the reply (or a
// description of what went wrong). Receives retry EINTR.
std::string udp_roundtrip(Sock& c, const Address& to, std::string_view msg) {
  if (!c.valid()) {
    c = Sock(::socket(to.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!c.valid()) return std::string("<socket: ") + std::strerror(errno) + ">";
    set_timeouts(c.get(), 3s);
    if (::connect(c.get(), to.sockaddr_ptr(), to.length()) != 0)
      return std::string("<connect: ") + std::strerror(errno) + ">";
  }
  ssize_t n;
  do {
    n = ::send(c.get(), msg.data(), msg.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n != ssize_t(msg.size())) return std::string("<send: ") + std::strerror(errno) + ">";
  std::string buf(64 * KiB, '\0');
  do {
    n = ::recv(c.get(), buf.data(), buf.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return std::string("<recv: ") + std::strerror(errno) + ">";
  buf.resize(size_t(n));
  return buf;
}

// True when a TCP connect to `a` is refused now (nothing listens).
bool connect_refused(const Address& a) {
  Sock s = connect_to(a, {.timeout = 2s});
  return !s.valid() && errno == ECONNREFUSED;
}

// Closes with a reset (SO_LINGER 0) rather than a FIN.
void close_with_reset(Sock& s) {
  linger lg{1, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  s.reset();
}

std::string describe(const ServerTotals& t) {
  std::ostringstream o;
  o << "open=" << t.connections_open << " accepted=" << t.accepted << " refused=" << t.refused
    << " accept_errors=" << t.accept_errors << " in=" << t.tcp_bytes_in << " out=" << t.tcp_bytes_out
    << " closed local=" << t.closed_local << " peer=" << t.closed_peer
    << " aborted=" << t.closed_aborted << " reset=" << t.closed_reset << " error=" << t.closed_error
    << " shutdown=" << t.closed_shutdown << " write_timeouts=" << t.write_timeouts
    << " dgrams in=" << t.datagrams_in << " out=" << t.datagrams_out
    << " dropped=" << t.datagrams_dropped;
  return o.str();
}

std::string describe(const std::vector<uint64_t>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "}";
}

// ---------------------------------------------------------------------------------------
// Handlers that say which loop they run on

// Per loop: connections opened, datagrams seen, and the threads that ran the handlers.
struct LoopTally {
  explicit LoopTally(size_t loops) : opened(loops), datagrams(loops), threads(loops) {}
  std::vector<std::atomic<int>> opened;
  std::vector<std::atomic<int>> datagrams;
  std::mutex m;
  std::vector<std::set<std::thread::id>> threads;

  void seen_on(size_t loop) {
    std::lock_guard lock(m);
    threads[loop].insert(std::this_thread::get_id());
  }
  std::vector<uint64_t> opened_per_loop() const {
    std::vector<uint64_t> v;
    for (const auto& x : opened) v.push_back(uint64_t(x.load()));
    return v;
  }
  std::vector<uint64_t> datagrams_per_loop() const {
    std::vector<uint64_t> v;
    for (const auto& x : datagrams) v.push_back(uint64_t(x.load()));
    return v;
  }
};

class TallyEcho final : public netloop::StreamHandler {
 public:
  TallyEcho(std::shared_ptr<LoopTally> t, size_t loop) : t_(std::move(t)), loop_(loop) {}
  void on_open(netloop::Connection&) override {
    ++t_->opened[loop_];
    t_->seen_on(loop_);
  }
  void on_data(netloop::Connection& c, netloop::Buffer& in) override {
    c.send(in.view());
    in.consume(in.size());
  }

 private:
  std::shared_ptr<LoopTally> t_;
  size_t loop_;
};

Server::StreamSetup tally_echo(std::shared_ptr<LoopTally> t) {
  return [t](netloop::EventLoop&, size_t i) {
    return StreamService{.factory = [t, i] { return std::make_unique<TallyEcho>(t, i); }};
  };
}

class TallyUdpEcho final : public netloop::DatagramHandler {
 public:
  TallyUdpEcho(std::shared_ptr<LoopTally> t, size_t loop) : t_(std::move(t)), loop_(loop) {}
  void on_datagram(netloop::DatagramSocket& s, std::span<const std::byte> data,
                   const Address& from) override {
    ++t_->datagrams[loop_];
    t_->seen_on(loop_);
    s.send_to(from, data);
  }

 private:
  std::shared_ptr<LoopTally> t_;
  size_t loop_;
};

// A request/response protocol with responses that take time, for drains: a request is
// a line "DELAY_MS BYTES\n"; DELAY_MS later the answer is pattern(BYTES) ("S MS\n" blocks
// the loop thread for MS ms instead, answering nothing). Told the server
// is draining, an idle connection closes at once; one with a request in progress (a
// response not yet sent, or part of a request line) answers it and then closes.
struct DelayJournal {
  std::atomic<int> requests{0};       // complete request lines
  std::atomic<int> answered{0};       // responses handed to send()
  std::atomic<int> told_draining{0};  // on_server_draining calls
  std::atomic<int> busy_when_told{0}; // ...with a request in progress
  std::atomic<int> closed{0};
  std::mutex m;
  std::vector<netloop::CloseReason> reasons;
  int count(netloop::CloseReason r) {
    std::lock_guard lock(m);
    return int(std::count(reasons.begin(), reasons.end(), r));
  }
};

class DelayedResponder final : public netloop::StreamHandler {
 public:
  explicit DelayedResponder(std::shared_ptr<DelayJournal> j) : j_(std::move(j)) {}

  void on_data(netloop::Connection& c, netloop::Buffer& in) override {
    partial_ = false;
    while (!timer_) {
      std::string_view v = in.view();
      size_t eol = v.find('\n');
      if (eol == std::string_view::npos) {
        partial_ = !v.empty();
        return;
      }
      unsigned long delay = 0, bytes = 0;
      std::string line(v.substr(0, eol));
      in.consume(eol + 1);
      if (std::sscanf(line.c_str(), "S %lu", &delay) == 1) {
        // "S MS": keeps this loop busy for MS milliseconds (a stand-in for a loop loaded
        // with work), so tests can order events around a loop that is not looking.
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
        continue;
      }
      if (std::sscanf(line.c_str(), "%lu %lu", &delay, &bytes) != 2) {
        c.send("bad request\n");
        c.close();
        return;
      }
      ++j_->requests;
      if (delay == 0) {
        answer(c, bytes);
        if (!c.is_open()) return;
        continue;
      }
      timer_ = c.start_timer(netloop::milliseconds(delay), netloop::Duration::zero(),
                             [this, bytes](netloop::Connection& conn) {
                               timer_ = {};
                               answer(conn, bytes);
                             });
    }
  }

  void on_server_draining(netloop::Connection& c) override {
    ++j_->told_draining;
    if (timer_ || partial_) {
      ++j_->busy_when_told;
      draining_ = true;  // answer what is in progress, then close
      return;
    }
    c.close();
  }

  void on_close(netloop::Connection&, const netloop::CloseInfo& info) override {
    ++j_->closed;
    std::lock_guard lock(j_->m);
    j_->reasons.push_back(info.reason);
  }

 private:
  void answer(netloop::Connection& c, size_t bytes) {
    c.send(pattern(bytes));
    ++j_->answered;
    if (draining_) c.close();
  }

  std::shared_ptr<DelayJournal> j_;
  netloop::TimerId timer_;
  bool partial_ = false;
  bool draining_ = false;
};

Server::StreamSetup delayed(std::shared_ptr<DelayJournal> j) {
  return [j](netloop::EventLoop&, size_t) {
    return StreamService{.factory = [j] { return std::make_unique<DelayedResponder>(j); }};
  };
}

// Sends one request line and reads its `bytes`-byte answer.
bool roundtrip(Sock& s, unsigned delay_ms, size_t bytes) {
  std::string req = std::to_string(delay_ms) + " " + std::to_string(bytes) + "\n";
  if (!send_all(s.get(), req)) return false;
  return recv_exact(s.get(), bytes) == pattern(bytes);
}

// ---------------------------------------------------------------------------------------
// A small HTTP site

const std::string kSmall = "hello from the server test\n";
const std::string& big_body() {
  static const std::string b = random_bytes(2 * MiB + 5, 77);
  return b;
}

// One HttpResponder per loop, as the demo does; kept for their counters.
struct HttpSetup {
  std::vector<std::shared_ptr<netloop::http::HttpResponder>> responders;
  Server::StreamSetup setup(const netloop::http::HttpOptions& o, size_t loops) {
    responders.resize(loops);
    return [this, o](netloop::EventLoop&, size_t i) {
      auto r = netloop::http::HttpResponder::create(o);
      REQUIRE_MESSAGE(r.ok(), "HttpResponder::create: " << r.error().message());
      responders[i] = *r;
      return StreamService{.factory = responders[i]->factory(),
                           .refusal_factory = netloop::http::refusal_factory(responders[i])};
    };
  }
  uint64_t refused() const {
    uint64_t n = 0;
    for (const auto& r : responders) n += r ? r->stats().refused.get() : 0;
    return n;
  }
  uint64_t responses(int cls) const {
    uint64_t n = 0;
    for (const auto& r : responders) n += r ? r->stats().responses[cls].get() : 0;
    return n;
  }
};

// A minimal HTTP/1.1 response reader over a blocking socket with SO_RCVTIMEO.
struct HttpReply {
  int status = 0;
  std::string head;  // status line and fields, CRLFs included
  std::string body;
  bool has_header(std::string_view line) const {
    return head.find("\r\n" + std::string(line) + "\r\n") != std::string::npos;
  }
};

class HttpReader {
 public:
  explicit HttpReader(int fd) : fd_(fd) {}
  // One response; `pace` > 0 reads the body slowly, in small pieces.
  std::optional<HttpReply> read(std::string* error, std::chrono::milliseconds pace = 0ms,
                                size_t piece = 4 * KiB) {
    HttpReply r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(64 * KiB)) return fail(error, "no complete response head: " + why_);
    }
    r.head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    if (r.head.compare(0, 9, "HTTP/1.1 ") != 0) return fail(error, "bad status line: " + r.head);
    r.status = std::atoi(r.head.c_str() + 9);
    size_t cl = r.head.find("\r\nContent-Length: ");
    if (cl == std::string::npos) return fail(error, "no Content-Length: " + r.head);
    size_t length = std::stoull(r.head.substr(cl + 18));
    while (buf_.size() < length) {
      if (pace.count() > 0) std::this_thread::sleep_for(pace);
      if (!fill(pace.count() > 0 ? piece : 256 * KiB))
        return fail(error, "body cut short at " + std::to_string(buf_.size()) + " of " +
                               std::to_string(length) + " bytes: " + why_);
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }
  size_t buffered() const { return buf_.size(); }
  size_t body_bytes_seen() const { return buf_.size(); }

 private:
  std::optional<HttpReply> fail(std::string* error, std::string why) {
    if (error) *error = std::move(why);
    return std::nullopt;
  }
  bool fill(size_t max) {
    size_t old = buf_.size();
    buf_.resize(old + max);
    ssize_t n;
    do {
      n = ::recv(fd_, buf_.data() + old, max, 0);
    } while (n < 0 && errno == EINTR);
    buf_.resize(old + (n > 0 ? size_t(n) : 0));
    if (n > 0) return true;
    why_ = n == 0 ? "EOF" : std::strerror(errno);
    return false;
  }
  int fd_;
  std::string buf_;
  std::string why_;
};

std::string http_get(std::string_view path) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n\r\n";
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Spreading across loops

namespace {

// `clients` connections held open at once, each echoing a message of its own; then
// checks where they went. With SO_REUSEPORT the kernel picks a listener by a hash of the
// connection's addresses and ports: each connection lands on a given loop of N with
// probability about 1/N, independently enough, so a loop getting none of C connections
// has probability about N * ((N-1)/N)^C: 2 * 2^-64 ~ 1e-19 for N = 2, C = 64, and
// 4 * (3/4)^128 ~ 4e-16 for N = 4, C = 128: astronomically unlikely. Without it the
// acceptor deals them round-robin: exactly C/N each.
void spread(const std::string& backend, size_t threads, bool reuse_port, size_t clients,
            const Address& where) {
  CAPTURE(backend);
  CAPTURE(threads);
  CAPTURE(reuse_port);
  CAPTURE(where.to_string());
  auto tally = std::make_shared<LoopTally>(threads);
  Server server(opts(threads, reuse_port, backend));
  server.add_stream("echo", where, tally_echo(tally));
  std::string why;
  REQUIRE_MESSAGE(server.start(&why).ok(), why);
  REQUIRE(server.loop_count() == threads);
  REQUIRE(server.bound().size() == 1);
  const Address addr = server.bound()[0].address;
  CHECK(addr.port() != 0);
  CHECK(server.bound()[0].name == "echo");
  CHECK_FALSE(server.bound()[0].datagram);
  for (size_t i = 0; i < threads; ++i) CHECK(server.loop(i).backend_name() == backend);
#ifdef __linux__
  // Port 0 was resolved once: every loop listens on that same port (one acceptor without
  // SO_REUSEPORT).
  CHECK(own_sockets(addr, false) == (reuse_port ? threads : 1));
#endif
  Running run(server);

  std::vector<Sock> socks;
  for (size_t i = 0; i < clients; ++i) {
    socks.push_back(connect_to(addr, {.timeout = 5s}));
    REQUIRE_MESSAGE(socks.back().valid(), "connect #" << i << ": " << std::strerror(errno));
  }
  size_t wrong = 0;
  for (size_t i = 0; i < clients; ++i) {
    std::string msg = "client " + std::to_string(i) + " " + random_bytes(100 + i, i);
    if (echo_once(socks[i].get(), msg) != msg) ++wrong;
  }
  CHECK(wrong == 0);
  CHECK(wait_until([&] { return server.totals().connections_open == clients; }, 5s));

  auto per_loop = server.accepted_per_loop();
  CAPTURE(describe(per_loop));
  REQUIRE(per_loop.size() == threads);
  uint64_t sum = 0;
  for (size_t i = 0; i < threads; ++i) {
    CHECK_MESSAGE(per_loop[i] > 0, "loop " << i << " accepted nothing");
    if (!reuse_port) CHECK(per_loop[i] == clients / threads);
    sum += per_loop[i];
  }
  CHECK(sum == clients);
  // The connections counted on a loop are the ones whose handlers ran there...
  CHECK(tally->opened_per_loop() == per_loop);
  // ...and every loop ran on one thread of its own.
  {
    std::lock_guard lock(tally->m);
    std::set<std::thread::id> all;
    for (size_t i = 0; i < threads; ++i) {
      CHECK_MESSAGE(tally->threads[i].size() == 1, "loop " << i << " ran on "
                                                           << tally->threads[i].size() << " threads");
      all.insert(tally->threads[i].begin(), tally->threads[i].end());
    }
    CHECK(all.size() == threads);
    CHECK(all.count(std::this_thread::get_id()) == 0);
  }
  ServerTotals t = server.totals();
  CAPTURE(describe(t));
  CHECK(t.accepted == clients);
  CHECK(t.refused == 0);

  socks.clear();  // orderly closes
  CHECK(wait_until([&] { return server.totals().connections_open == 0; }, 5s));
  t = server.totals();
  CHECK(t.closed_peer == clients);
  CHECK(t.closed_reset + t.closed_error + t.closed_aborted + t.closed_local + t.closed_shutdown == 0);
}

}  // namespace

TEST_CASE("server: connections spread across 2 and 4 loops, with SO_REUSEPORT and with the acceptor hand-off") {
  for (const auto& backend : server_backends()) {
    for (bool reuse_port : {true, false}) {
      spread(backend, 2, reuse_port, 64, Address::ipv4_loopback(0));
      spread(backend, 4, reuse_port, 128, Address::ipv4_loopback(0));
    }
  }
}

TEST_CASE("server: IPv6 loopback on 2 loops, both ways") {
  if (!ipv6_loopback_works()) {
    MESSAGE("skipped: cannot bind [::1]");
    return;
  }
  for (bool reuse_port : {true, false}) spread("epoll", 2, reuse_port, 64, Address::ipv6_loopback(0));
}

TEST_CASE("server: one loop by default") {
  auto tally = std::make_shared<LoopTally>(1);
  Server server(opts(1));
  server.add_stream("echo", Address::ipv4_loopback(0), tally_echo(tally));
  REQUIRE(server.start().ok());
  CHECK(server.loop_count() == 1);
  Running run(server);
  Sock s = connect_to(server.bound()[0].address, {.timeout = 5s});
  REQUIRE(s.valid());
  CHECK(echo_once(s.get(), "one loop") == "one loop");
  CHECK(server.accepted_per_loop() == std::vector<uint64_t>{1});
  std::lock_guard lock(tally->m);
  CHECK(tally->threads[0].size() == 1);
  CHECK(tally->threads[0].count(std::this_thread::get_id()) == 0);  // run()'s thread
}

TEST_CASE("server: start() names the listener that cannot bind") {
  // A plain listener (no SO_REUSEPORT) holds the port: the server's loops cannot join it.
  Sock holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(holder.valid());
  Address any = Address::ipv4_loopback(0);
  REQUIRE(::bind(holder.get(), any.sockaddr_ptr(), any.length()) == 0);
  REQUIRE(::listen(holder.get(), 8) == 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  Address taken = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  for (bool reuse_port : {true, false}) {
    CAPTURE(reuse_port);
    Server server(opts(2, reuse_port));
    server.add_stream("busy-echo", taken, tally_echo(std::make_shared<LoopTally>(2)));
    std::string why;
    auto ec = server.start(&why).error();
    CHECK(ec.value() == EADDRINUSE);
    CHECK_MESSAGE(why.find("busy-echo") != std::string::npos, why);
    CHECK_MESSAGE(why.find(taken.to_string()) != std::string::npos, why);
  }
}

// ---------------------------------------------------------------------------------------
// UDP

TEST_CASE("server: UDP on 2 loops: every loop receives, all echoed, one port") {
  // 64 client sockets, each its own source port: the kernel hashes each to one of the two
  // loops' sockets, so a loop getting none has probability about 2 * 2^-64.
  constexpr size_t kClients = 64;
  for (const auto& backend : server_backends()) {
    for (bool reuse_port : {true, false}) {
      CAPTURE(backend);
      CAPTURE(reuse_port);
      auto tally = std::make_shared<LoopTally>(2);
      Server server(opts(2, reuse_port, backend));
      server.add_datagram("udp-echo", Address::ipv4_loopback(0), [tally](netloop::EventLoop&, size_t i) {
        return std::unique_ptr<netloop::DatagramHandler>(std::make_unique<TallyUdpEcho>(tally, i));
      });
      std::string why;
      REQUIRE_MESSAGE(server.start(&why).ok(), why);
      REQUIRE(server.bound().size() == 1);
      const Address addr = server.bound()[0].address;
      CHECK(server.bound()[0].datagram);
      CHECK(addr.port() != 0);
#ifdef __linux__
      // Without SO_REUSEPORT a UDP port is served by loop 0 alone; and no other process
      // shares the port (Linux would let a SO_REUSEPORT bind to port 0 join someone
      // else's group: Server picks the port with an exclusive socket).
      CHECK(own_sockets(addr, true) == (reuse_port ? 2u : 1u));
      std::string others = foreign_sockets(addr, true, "07");
      CHECK_MESSAGE(others.empty(), "other processes' sockets on the port:\n" << others);
#endif
      Running run(server);

      std::vector<Sock> clients(kClients);
      uint64_t bytes = 0;
      size_t bad = 0;
      for (size_t i = 0; i < kClients; ++i) {
        std::string msg = "datagram " + std::to_string(i) + " " + std::string(i, 'x');
        bytes += msg.size();
        std::string got = udp_roundtrip(clients[i], addr, msg);
        if (got != msg) {
          ++bad;
          MESSAGE("datagram " << i << ": " << got.substr(0, 80));
        }
      }
      CHECK(bad == 0);
      auto per_loop = tally->datagrams_per_loop();
      CAPTURE(describe(per_loop));
      if (reuse_port) {
        CHECK(per_loop[0] > 0);
        CHECK(per_loop[1] > 0);
      } else {
        CHECK(per_loop == std::vector<uint64_t>{kClients, 0});
      }
      CHECK(per_loop[0] + per_loop[1] == kClients);
      // The reply can reach the client a moment before the loop counts its send.
      CHECK(wait_until([&] { return server.datagram_stats(0).datagrams_out == kClients; }, 2s));
      netloop::UdpStats st = server.datagram_stats(0);
      CHECK(st.datagrams_in == kClients);
      CHECK(st.datagrams_out == kClients);
      CHECK(st.bytes_in == bytes);
      CHECK(st.bytes_out == bytes);
      ServerTotals t = server.totals();
      CHECK(t.datagrams_in == kClients);
      CHECK(t.datagrams_out == kClients);
      CHECK(t.datagrams_dropped == 0);
      CHECK(t.accepted == 0);
    }
  }
}

TEST_CASE("server: UDP port 0 on 2 loops never joins another SO_REUSEPORT group") {
  // Linux lets a UDP socket with SO_REUSEPORT binding port 0 be given a port that other
  // SO_REUSEPORT sockets of the same user already hold (TCP never does that): two servers
  // would share each other's datagrams. Hold many such ports (a third of the ephemeral
  // range or more), as other processes might, then start servers on port 0: none may
  // land on one of them. Without the exclusive pick each start lands on a held port with
  // probability about the held fraction, so 40 starts miss it with odds around 1e-7.
  // On ::1: the held sockets could themselves join the SO_REUSEPORT group of a test
  // running beside this one, and no other test serves UDP with SO_REUSEPORT on ::1.
  if (!ipv6_loopback_works()) {
    MESSAGE("skipped: no IPv6 loopback here");
    return;
  }
  rlimit lim{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &lim) == 0);
  rlimit raised = lim;
  raised.rlim_cur = std::max<rlim_t>(lim.rlim_cur, std::min<rlim_t>(lim.rlim_max, 20000));
  ::setrlimit(RLIMIT_NOFILE, &raised);
  struct Restore {
    rlimit saved;
    ~Restore() { ::setrlimit(RLIMIT_NOFILE, &saved); }
  } restore{lim};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &raised) == 0);
  const size_t room = raised.rlim_cur > 1000 ? size_t(raised.rlim_cur) - 1000 : 0;
  const size_t hold = std::min<size_t>(12000, room);
  REQUIRE_MESSAGE(hold >= 8000, "needs about 9,000 descriptors (ulimit -n), has " << raised.rlim_cur);
  std::vector<Sock> held;
  std::set<uint16_t> held_ports;
  for (size_t i = 0; i < hold; ++i) {
    Sock s(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(s.valid());
    int one = 1;
    REQUIRE(::setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0);
    REQUIRE(::setsockopt(s.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
    Address a = Address::ipv6_loopback(0);
    if (::bind(s.get(), a.sockaddr_ptr(), a.length()) < 0) break;  // the range is full
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    REQUIRE(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
    held_ports.insert(Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).port());
    held.push_back(std::move(s));
  }
  CAPTURE(held_ports.size());
  REQUIRE(held_ports.size() > 6000);
  int landed = 0;
  for (int i = 0; i < 40; ++i) {
    Server server(opts(2));
    server.add_datagram("udp", Address::ipv6_loopback(0), [](netloop::EventLoop&, size_t) {
      return netloop::echo::make_udp_echo_handler();
    });
    std::string why;
    REQUIRE_MESSAGE(server.start(&why).ok(), why);
    const Address addr = server.bound()[0].address;
    if (held_ports.count(addr.port())) ++landed;
  }
  CHECK_MESSAGE(landed == 0, landed << " of 40 servers were given a port already in use");
}

// ---------------------------------------------------------------------------------------
// Drain

TEST_CASE("server drain: stops accepting at once, closes idle connections, finishes responses in flight") {
  for (const auto& backend : server_backends()) {
    for (bool reuse_port : {true, false}) {
      CAPTURE(backend);
      CAPTURE(reuse_port);
      auto j = std::make_shared<DelayJournal>();
      ServerOptions so = with_drain(opts(2, reuse_port, backend), netloop::seconds(10));
      so.listener.connection.linger_timeout = netloop::seconds(2);
      Server server(so);
      server.add_stream("delayed", Address::ipv4_loopback(0), delayed(j));
      std::string why;
      REQUIRE_MESSAGE(server.start(&why).ok(), why);
      const Address addr = server.bound()[0].address;
      Running run(server);

      // Idle connections, served once (so accepted and open on their loops).
      constexpr size_t kIdle = 8;
      std::vector<Sock> idle;
      for (size_t i = 0; i < kIdle; ++i) {
        idle.push_back(connect_to(addr, {.timeout = 5s}));
        REQUIRE(idle.back().valid());
        REQUIRE(roundtrip(idle.back(), 0, 10 + i));
      }
      // Requests whose answers come 400 ms later, after the drain has begun.
      constexpr size_t kDelayed = 6;
      constexpr size_t kDelayedBytes = 300 * KiB;
      std::vector<Sock> waiting;
      for (size_t i = 0; i < kDelayed; ++i) {
        waiting.push_back(connect_to(addr, {.timeout = 5s}));
        REQUIRE(waiting.back().valid());
        REQUIRE(send_all(waiting.back().get(), "400 " + std::to_string(kDelayedBytes) + "\n"));
      }
      // A large answer being read slowly: most of it still queued in the server.
      constexpr size_t kSlowBytes = 1 * MiB;
      Sock slow = connect_to(addr, {.rcvbuf = 4 * int(KiB), .timeout = 5s});
      REQUIRE(slow.valid());
      REQUIRE(send_all(slow.get(), "0 " + std::to_string(kSlowBytes) + "\n"));
      std::string slow_got = recv_exact(slow.get(), 1000);  // the answer is flowing
      REQUIRE(slow_got.size() == 1000);
      // Half a request line: the handler counts it in progress.
      Sock half = connect_to(addr, {.timeout = 5s});
      REQUIRE(half.valid());
      REQUIRE(send_all(half.get(), "0 12"));
      REQUIRE(wait_until([&] { return j->requests.load() == int(kIdle + kDelayed + 1); }, 5s));
      REQUIRE(wait_until([&] { return server.totals().connections_open == kIdle + kDelayed + 2; }, 5s));
      // (counted right after send(): the client may see the bytes first)
      CHECK(wait_until([&] { return j->answered.load() == int(kIdle + 1); }, 2s));

      auto t0 = SteadyClock::now();
      from_another_thread([&] { server.drain(); });
      CHECK(server.draining());
      // Not accepting: a connect is refused at once (both listeners, or the acceptor).
      CHECK(wait_until([&] { return connect_refused(addr); }, 2s));
      CHECK(ms_since(t0) < 2500);  // at once, not at the drain's end (10 s); a loaded CI
                                   // machine has taken just over 1 s here
      // Idle connections: closed promptly, with nothing sent.
      for (auto& s : idle) CHECK(std::string(to_cstr(wait_end(s.get(), 2s))) == "eof");
      CHECK(ms_since(t0) < 4000);  // promptly: long before the drain timeout (10 s)
      // (an idle client can see its EOF while its loop is still telling the others)
      CHECK(wait_until([&] { return j->told_draining.load() == int(kIdle + kDelayed + 2); }, 1s));
      CHECK(j->busy_when_told.load() == int(kDelayed + 1));
      CHECK_FALSE(run.returned());

      // The half request, completed after the drain began, is answered, then closed.
      REQUIRE(send_all(half.get(), "3\n"));
      CHECK(recv_exact(half.get(), 123) == pattern(123));
      CHECK(std::string(to_cstr(wait_end(half.get(), 3s))) == "eof");
      // The delayed answers arrive whole, then the end of the stream.
      for (auto& s : waiting) {
        std::string got = recv_exact(s.get(), kDelayedBytes);
        CHECK_MESSAGE(got == pattern(kDelayedBytes), diff_bytes(got, pattern(kDelayedBytes)));
        CHECK(std::string(to_cstr(wait_end(s.get(), 3s))) == "eof");
      }
      // The slow reader gets all of its answer.
      slow_got += read_slowly(slow.get(), kSlowBytes - slow_got.size(), 16 * KiB, 2ms);
      CHECK_MESSAGE(slow_got == pattern(kSlowBytes), diff_bytes(slow_got, pattern(kSlowBytes)));
      CHECK(std::string(to_cstr(wait_end(slow.get(), 3s))) == "eof");
      auto done = SteadyClock::now();
      waiting.clear();
      slow.reset();
      half.reset();
      // Nothing is left: run() returns, long before the 10 s drain timeout.
      REQUIRE(run.wait_returned(3s));
      CHECK(ms_between(done, run.returned_at()) < 2000);
      ServerTotals t = server.totals();
      CAPTURE(describe(t));
      CHECK(t.connections_open == 0);
      CHECK(t.closed_error == 0);
      CHECK(t.closed_reset == 0);
      CHECK(t.write_timeouts == 0);
      CHECK(t.accepted == kIdle + kDelayed + 2);
      CHECK(j->answered.load() == int(kIdle + kDelayed + 2));
    }
  }
}

TEST_CASE("server drain: HTTP: idle keep-alive closed, a slow download completes, a half-sent request gets Connection: close") {
  TempDir root("netloop-server");
  root.write("small.txt", kSmall);
  root.write("big.bin", big_body());
  netloop::http::HttpOptions ho;
  ho.root = root.str();
  for (bool reuse_port : {true, false}) {
    CAPTURE(reuse_port);
    HttpSetup http;
    Server server(with_drain(opts(2, reuse_port), netloop::seconds(10)));
    server.add_stream("http", Address::ipv4_loopback(0), http.setup(ho, 2));
    std::string why;
    REQUIRE_MESSAGE(server.start(&why).ok(), why);
    const Address addr = server.bound()[0].address;
    Running run(server);
    std::string err;

    std::vector<Sock> idle;
    for (int i = 0; i < 4; ++i) {
      idle.push_back(connect_to(addr, {.timeout = 5s}));
      REQUIRE(idle.back().valid());
      REQUIRE(send_all(idle.back().get(), http_get("/small.txt")));
      HttpReader r(idle.back().get());
      auto reply = r.read(&err);
      REQUIRE_MESSAGE(reply, err);
      CHECK(reply->body == kSmall);
    }
    Sock slow = connect_to(addr, {.rcvbuf = 8 * int(KiB), .timeout = 5s});
    REQUIRE(slow.valid());
    REQUIRE(send_all(slow.get(), http_get("/big.bin")));
    HttpReader slow_reader(slow.get());
    Sock half = connect_to(addr, {.timeout = 5s});
    REQUIRE(half.valid());
    REQUIRE(send_all(half.get(), "GET /small.txt HTTP/1.1\r\nHost: test\r\n"));
    REQUIRE(wait_until([&] { return server.totals().connections_open == 6; }, 5s));
    std::this_thread::sleep_for(50ms);  // the big response is under way, the head half read

    auto t0 = SteadyClock::now();
    from_another_thread([&] { server.drain(); });
    CHECK(wait_until([&] { return connect_refused(addr); }, 2s));
    CHECK(ms_since(t0) < 1000);  // at once, not at the drain's end
    for (auto& s : idle) CHECK(std::string(to_cstr(wait_end(s.get(), 2s))) == "eof");
    CHECK(ms_since(t0) < 2000);  // promptly: long before the drain timeout

    REQUIRE(send_all(half.get(), "\r\n"));
    HttpReader hr(half.get());
    auto hreply = hr.read(&err);
    REQUIRE_MESSAGE(hreply, err);
    CHECK(hreply->status == 200);
    CHECK(hreply->body == kSmall);
    CHECK_MESSAGE(hreply->has_header("Connection: close"), hreply->head);
    CHECK(std::string(to_cstr(wait_end(half.get(), 3s))) == "eof");

    auto big = slow_reader.read(&err, 1ms, 16 * KiB);
    REQUIRE_MESSAGE(big, err);
    CHECK(big->status == 200);
    CHECK_MESSAGE(big->body == big_body(), diff_bytes(big->body, big_body()));
    CHECK(std::string(to_cstr(wait_end(slow.get(), 3s))) == "eof");

    slow.reset();
    half.reset();
    REQUIRE(run.wait_returned(3s));
    ServerTotals t = server.totals();
    CAPTURE(describe(t));
    CHECK(t.closed_error + t.closed_reset + t.write_timeouts == 0);
    CHECK(http.responses(2) == 6);
  }
}

TEST_CASE("server drain: the drain timeout closes what never finishes") {
  for (bool reuse_port : {true, false}) {
    CAPTURE(reuse_port);
    auto j = std::make_shared<DelayJournal>();
    Server server(with_drain(opts(2, reuse_port), netloop::milliseconds(400)));
    server.add_stream("delayed", Address::ipv4_loopback(0), delayed(j));
    REQUIRE(server.start().ok());
    const Address addr = server.bound()[0].address;
    Running run(server);

    // Two never-finished request lines and two answers due long after the timeout, so
    // (most likely) both loops have something to force closed.
    std::vector<Sock> stuck;
    for (int i = 0; i < 4; ++i) {
      stuck.push_back(connect_to(addr, {.timeout = 5s}));
      REQUIRE(stuck.back().valid());
      REQUIRE(send_all(stuck.back().get(), i % 2 ? "0 1" : "20000 10\n"));
    }
    REQUIRE(wait_until([&] { return server.totals().connections_open == 4 && j->requests.load() == 2; }, 5s));

    auto t0 = SteadyClock::now();
    from_another_thread([&] { server.drain(); });
    REQUIRE(run.wait_returned(5s));
    long took = ms_between(t0, run.returned_at());
    CHECK(took >= 350);
    CHECK(took < 2000);
    for (auto& s : stuck) {
      Ending e = wait_end(s.get(), 2s);
      CHECK_MESSAGE((e == Ending::eof || e == Ending::reset), std::string(to_cstr(e)));
    }
    ServerTotals t = server.totals();
    CAPTURE(describe(t));
    CHECK(t.closed_shutdown == 4);
    CHECK(t.connections_open == 0);
    CHECK(j->answered.load() == 0);
    CHECK(j->count(netloop::CloseReason::shutdown) == 4);
  }
}

TEST_CASE("server drain: an idle server finishes at once; drain twice is harmless") {
  Server server(opts(2));
  server.add_stream("echo", Address::ipv4_loopback(0), tally_echo(std::make_shared<LoopTally>(2)));
  REQUIRE(server.start().ok());
  Running run(server);
  auto t0 = SteadyClock::now();
  server.drain();
  server.drain();
  REQUIRE(run.wait_returned(2s));
  CHECK(ms_between(t0, run.returned_at()) < 500);
  server.stop();  // after the end: harmless
}

TEST_CASE("server signals: SIGTERM drains; SIGUSR1 and a second SIGTERM still work once loop 0 is done") {
  // The acceptor hand-off deals connections round-robin, so where they land is known:
  // the first on loop 0 (idle), the second on loop 1 (half a request: the drain waits for
  // it). Loop 0 finishes its part of the drain at once; signals must still be handled
  // (they arrive through loop 0's signal pipe): SIGUSR1 calls back, a second SIGTERM stops.
  auto j = std::make_shared<DelayJournal>();
  Server server(with_drain(opts(2, /*reuse_port=*/false, "epoll"), netloop::seconds(30)));
  server.add_stream("delayed", Address::ipv4_loopback(0), delayed(j));
  REQUIRE(server.start().ok());
  std::atomic<int> usr1{0};
  auto ec = server.handle_signals([&usr1] { ++usr1; }).error();
  REQUIRE_MESSAGE(!ec, "handle_signals: " << ec.message());  // else SIGTERM would kill us
  const Address addr = server.bound()[0].address;
  Running run(server);

  Sock on0 = connect_to(addr, {.timeout = 5s});
  REQUIRE(on0.valid());
  REQUIRE(roundtrip(on0, 0, 5));
  Sock on1 = connect_to(addr, {.timeout = 5s});
  REQUIRE(on1.valid());
  REQUIRE(send_all(on1.get(), "0 1"));  // never finished
  REQUIRE(wait_until([&] { return server.totals().connections_open == 2; }, 5s));
  REQUIRE(server.accepted_per_loop() == std::vector<uint64_t>{1, 1});

  ::kill(::getpid(), SIGUSR1);
  CHECK(wait_until([&] { return usr1.load() == 1; }, 2s));
  ::kill(::getpid(), SIGTERM);
  CHECK(wait_until([&] { return server.draining(); }, 2s));
  CHECK(std::string(to_cstr(wait_end(on0.get(), 2s))) == "eof");  // loop 0: done
  std::this_thread::sleep_for(100ms);
  CHECK_FALSE(run.returned());  // loop 1 waits for its request
  ::kill(::getpid(), SIGUSR1);
  CHECK_MESSAGE(wait_until([&] { return usr1.load() == 2; }, 2s),
                "SIGUSR1 during the drain was not handled once loop 0 had finished");
  auto t0 = SteadyClock::now();
  ::kill(::getpid(), SIGTERM);
  CHECK_MESSAGE(run.wait_returned(2s),
                "a second SIGTERM did not stop the server once loop 0 had finished its drain");
  if (run.returned()) CHECK(ms_between(t0, run.returned_at()) < 1000);
  Ending e = wait_end(on1.get(), 3s);
  CHECK_MESSAGE((e == Ending::eof || e == Ending::reset), std::string(to_cstr(e)));
}

TEST_CASE("server hand-off: a connection accepted just as the drain begins is not left open") {
  // One acceptor (loop 0) hands connections to the loops in turn. A client connects while
  // loop 0 is busy (a handler holding it for 400 ms), then drain() is called: loop 1
  // drains at once; loop 0, when it looks again, first accepts the waiting connection and
  // hands it to loop 1, then drains. That connection must not outlive the drain: told to
  // drain (an idle one closes), or closed. Either way its client sees the end promptly.
  for (bool loop1_busy : {true, false}) {
    CAPTURE(loop1_busy);
    auto j = std::make_shared<DelayJournal>();
    Server server(with_drain(opts(2, /*reuse_port=*/false, "epoll"), netloop::seconds(5)));
    server.add_stream("delayed", Address::ipv4_loopback(0), delayed(j));
    REQUIRE(server.start().ok());
    const Address addr = server.bound()[0].address;
    Running run(server);

    Sock blocker = connect_to(addr, {.timeout = 5s});  // loop 0
    REQUIRE(blocker.valid());
    REQUIRE(roundtrip(blocker, 0, 3));
    std::vector<Sock> others;
    if (loop1_busy) {
      // Loop 1 has an answer due in 3 s, so it is draining, not finished, when the late
      // connection arrives; loop 0 gets an idle one, so the late one is loop 1's turn.
      others.push_back(connect_to(addr, {.timeout = 5s}));  // loop 1
      REQUIRE(send_all(others.back().get(), "3000 10\n"));
      others.push_back(connect_to(addr, {.timeout = 5s}));  // loop 0
      REQUIRE(roundtrip(others.back(), 0, 3));
    }
    REQUIRE(wait_until([&] { return server.totals().connections_open == 1 + others.size(); }, 5s));
    REQUIRE(send_all(blocker.get(), "S 400\n"));
    std::this_thread::sleep_for(50ms);
    Sock late = connect_to(addr, {.timeout = 5s});  // waits in the acceptor's backlog
    REQUIRE(late.valid());
    std::this_thread::sleep_for(50ms);
    auto t0 = SteadyClock::now();
    from_another_thread([&] { server.drain(); });
    Ending e = wait_end(late.get(), 2s);
    CHECK_MESSAGE((e == Ending::eof || e == Ending::reset),
                  "the late connection: " << std::string(to_cstr(e)) << " " << ms_since(t0) << " ms after drain()");
    late.reset();
    others.clear();
    blocker.reset();
    CHECK(run.wait_returned(6s));
  }
}

// ---------------------------------------------------------------------------------------
// stop()

TEST_CASE("server stop: closes everything at once, from another thread") {
  for (const auto& backend : server_backends()) {
    for (bool reuse_port : {true, false}) {
      CAPTURE(backend);
      CAPTURE(reuse_port);
      auto j = std::make_shared<DelayJournal>();
      Server server(opts(2, reuse_port, backend));
      server.add_stream("delayed", Address::ipv4_loopback(0), delayed(j));
      REQUIRE(server.start().ok());
      const Address addr = server.bound()[0].address;
      Running run(server);
      std::vector<Sock> socks;
      for (int i = 0; i < 8; ++i) {
        socks.push_back(connect_to(addr, {.timeout = 5s}));
        REQUIRE(socks.back().valid());
        if (i % 2) REQUIRE(roundtrip(socks.back(), 0, 100));          // idle
        else REQUIRE(send_all(socks.back().get(), "30000 100\n"));  // waiting
      }
      REQUIRE(wait_until([&] { return j->requests.load() == 8; }, 5s));
      auto t0 = SteadyClock::now();
      from_another_thread([&] { server.stop(); });
      REQUIRE(run.wait_returned(2s));
      CHECK(ms_between(t0, run.returned_at()) < 500);
      for (auto& s : socks) {
        Ending e = wait_end(s.get(), 2s);
        CHECK_MESSAGE((e == Ending::eof || e == Ending::reset), std::string(to_cstr(e)));
      }
      CHECK(connect_refused(addr));
      ServerTotals t = server.totals();
      CAPTURE(describe(t));
      CHECK(t.closed_shutdown == 8);
      CHECK(t.connections_open == 0);
      CHECK(t.accepted == 8);  // kept after the listeners are gone
      CHECK(j->told_draining.load() == 0);
      server.stop();  // again: harmless
    }
  }
}

TEST_CASE("server stop: a server started but never run is destroyed cleanly") {
  Server server(opts(3));
  server.add_stream("echo", Address::ipv4_loopback(0), tally_echo(std::make_shared<LoopTally>(3)));
  server.add_datagram("udp", Address::ipv4_loopback(0), [](netloop::EventLoop&, size_t) {
    return std::unique_ptr<netloop::DatagramHandler>(
        std::make_unique<TallyUdpEcho>(std::make_shared<LoopTally>(3), 0));
  });
  REQUIRE(server.start().ok());
  CHECK(server.start().error().value() == EALREADY);
  server.stop();
}

// ---------------------------------------------------------------------------------------
// max_connections across loops

TEST_CASE("server max_connections: shared by 2 loops; past it refused at once and counted") {
  constexpr size_t kMax = 6;
  for (const auto& backend : server_backends()) {
    for (bool reuse_port : {true, false}) {
      CAPTURE(backend);
      CAPTURE(reuse_port);
      auto tally = std::make_shared<LoopTally>(2);
      Server server(with_max(opts(2, reuse_port, backend), kMax));
      server.add_stream("echo", Address::ipv4_loopback(0), tally_echo(tally));
      REQUIRE(server.start().ok());
      const Address addr = server.bound()[0].address;
      Running run(server);

      std::vector<Sock> open;
      for (size_t i = 0; i < kMax; ++i) {
        open.push_back(connect_to(addr, {.timeout = 5s}));
        REQUIRE(open.back().valid());
        std::string msg = "allowed " + std::to_string(i);
        REQUIRE(echo_once(open.back().get(), msg) == msg);
      }
      CHECK(server.totals().refused == 0);
      // Past the limit: the kernel completes the handshake, the server accepts and closes
      // at once, whichever loop the connection lands on.
      for (int k = 1; k <= 3; ++k) {
        CAPTURE(k);
        auto t0 = SteadyClock::now();
        Sock extra = connect_to(addr, {.timeout = 5s});
        REQUIRE(extra.valid());
        send_all(extra.get(), "refused?");  // may fail: the server may have closed already
        Ending e = wait_end(extra.get(), 3s);
        CHECK_MESSAGE((e == Ending::eof || e == Ending::reset), std::string(to_cstr(e)));
        CHECK(ms_since(t0) < 2000);  // not left in the backlog (wait_end gives 3 s)
        CHECK(wait_until([&] { return server.totals().refused == uint64_t(k); }, 2s));
      }
      // The allowed ones are unharmed.
      for (size_t i = 0; i < kMax; ++i) CHECK(echo_once(open[i].get(), "still") == "still");
      // One closes: its slot is free again, on whichever loop the next one lands.
      open.erase(open.begin());
      REQUIRE(wait_until([&] { return server.totals().connections_open == kMax - 1; }, 3s));
      // The slot is given back before connections_open drops: no pause needed here.
      for (int k = 0; k < 2; ++k) {  // the first takes the slot, the second is refused
        Sock next = connect_to(addr, {.timeout = 5s});
        REQUIRE(next.valid());
        if (k == 0) {
          CHECK(echo_once(next.get(), "welcome back") == "welcome back");
          open.push_back(std::move(next));
        } else {
          Ending e = wait_end(next.get(), 3s);
          CHECK_MESSAGE((e == Ending::eof || e == Ending::reset), std::string(to_cstr(e)));
        }
      }
      CHECK(wait_until([&] { return server.totals().refused == 4; }, 2s));
      ServerTotals t = server.totals();
      CAPTURE(describe(t));
      // accept(2) succeeded for the refused ones too: they are in `accepted`.
      CHECK(t.accepted == kMax + 1 + 4);
      CHECK(t.connections_open == kMax);
      auto opened = tally->opened_per_loop();
      CHECK(opened[0] + opened[1] == kMax + 1);  // refused ones never reach the handler
    }
  }
}

TEST_CASE("server max_connections: one budget for every listener of every protocol") {
  // Two stream registrations (two ports), 2 loops each, max 4 in all: 2 + 2 fill it.
  constexpr size_t kMax = 4;
  for (bool reuse_port : {true, false}) {
    CAPTURE(reuse_port);
    Server server(with_max(opts(2, reuse_port), kMax));
    server.add_stream("echo-a", Address::ipv4_loopback(0), tally_echo(std::make_shared<LoopTally>(2)));
    server.add_stream("echo-b", Address::ipv4_loopback(0), tally_echo(std::make_shared<LoopTally>(2)));
    REQUIRE(server.start().ok());
    REQUIRE(server.bound().size() == 2);
    const Address a = server.bound()[0].address;
    const Address b = server.bound()[1].address;
    Running run(server);
    std::vector<Sock> open;
    for (size_t i = 0; i < kMax; ++i) {
      open.push_back(connect_to(i % 2 ? b : a, {.timeout = 5s}));
      REQUIRE(open.back().valid());
      REQUIRE(echo_once(open.back().get(), "in") == "in");
    }
    for (const Address& where : {a, b}) {
      CAPTURE(where.to_string());
      Sock extra = connect_to(where, {.timeout = 5s});
      REQUIRE(extra.valid());
      Ending e = wait_end(extra.get(), 3s);
      CHECK_MESSAGE((e == Ending::eof || e == Ending::reset), std::string(to_cstr(e)));
    }
    CHECK(wait_until([&] { return server.totals().refused == 2; }, 2s));
    open.erase(open.begin());  // one of port a's
    REQUIRE(wait_until([&] { return server.totals().connections_open == kMax - 1; }, 3s));
    Sock next = connect_to(b, {.timeout = 5s});  // port b takes port a's slot
    REQUIRE(next.valid());
    CHECK(echo_once(next.get(), "welcome") == "welcome");
    CHECK(server.totals().refused == 2);
  }
}

TEST_CASE("server max_connections: HTTP past the limit gets a 503, then the connection closes") {
  constexpr size_t kMax = 4;
  TempDir root("netloop-server");
  root.write("small.txt", kSmall);
  netloop::http::HttpOptions ho;
  ho.root = root.str();
  for (bool reuse_port : {true, false}) {
    CAPTURE(reuse_port);
    HttpSetup http;
    Server server(with_max(opts(2, reuse_port), kMax));
    server.add_stream("http", Address::ipv4_loopback(0), http.setup(ho, 2));
    REQUIRE(server.start().ok());
    const Address addr = server.bound()[0].address;
    Running run(server);
    std::string err;
    std::vector<Sock> open;
    for (size_t i = 0; i < kMax; ++i) {
      open.push_back(connect_to(addr, {.timeout = 5s}));
      REQUIRE(open.back().valid());
      REQUIRE(send_all(open.back().get(), http_get("/small.txt")));
      HttpReader r(open.back().get());
      auto reply = r.read(&err);
      REQUIRE_MESSAGE(reply, err);
      CHECK(reply->status == 200);
    }
    for (int k = 1; k <= 2; ++k) {
      CAPTURE(k);
      auto t0 = SteadyClock::now();
      Sock extra = connect_to(addr, {.timeout = 5s});
      REQUIRE(extra.valid());
      HttpReader r(extra.get());
      auto reply = r.read(&err);  // unasked: the 503 comes at once
      REQUIRE_MESSAGE(reply, err);
      CHECK(reply->status == 503);
      CHECK_MESSAGE(reply->has_header("Connection: close"), reply->head);
      Ending e = wait_end(extra.get(), 3s);
      CHECK_MESSAGE((e == Ending::eof || e == Ending::reset), std::string(to_cstr(e)));
      CHECK(ms_since(t0) < 1500);
      CHECK(wait_until([&] { return server.totals().refused == uint64_t(k); }, 2s));
      CHECK(http.refused() == uint64_t(k));
      CHECK(http.responses(5) == uint64_t(k));
    }
    // A client that sends its request first is refused all the same, and reads the 503.
    {
      Sock extra = connect_to(addr, {.timeout = 5s});
      REQUIRE(extra.valid());
      send_all(extra.get(), http_get("/small.txt"));
      HttpReader r(extra.get());
      auto reply = r.read(&err);
      REQUIRE_MESSAGE(reply, err);
      CHECK(reply->status == 503);
    }
    CHECK(wait_until([&] { return server.totals().refused == 3; }, 2s));
    // The refused connections went away; the slot frees when an allowed one closes.
    open.pop_back();
    REQUIRE(wait_until([&] { return server.totals().connections_open == kMax - 1; }, 3s));
    Sock again = connect_to(addr, {.timeout = 5s});
    REQUIRE(again.valid());
    REQUIRE(send_all(again.get(), http_get("/small.txt")));
    HttpReader r(again.get());
    auto reply = r.read(&err);
    REQUIRE_MESSAGE(reply, err);
    CHECK(reply->status == 200);
    CHECK(server.totals().refused == 3);
  }
}

// ---------------------------------------------------------------------------------------
// Exact totals

TEST_CASE("server totals: exact counters after a scripted load, before and after the loops finish") {
  for (bool reuse_port : {true, false}) {
    CAPTURE(reuse_port);
    auto journal = std::make_shared<Journal>();
    auto tally = std::make_shared<LoopTally>(2);
    ServerOptions so = opts(2, reuse_port);
    so.listener.connection.linger_timeout = netloop::seconds(3);
    Server server(so);
    // Echo that closes when it sees '!' (JournalEcho from support.hpp).
    server.add_stream("echo", Address::ipv4_loopback(0), [journal](netloop::EventLoop&, size_t) {
      return StreamService{.factory = journal_factory(journal, EchoBehavior{.close_on = '!'})};
    });
    server.add_datagram("udp-echo", Address::ipv4_loopback(0), [tally](netloop::EventLoop&, size_t i) {
      return std::unique_ptr<netloop::DatagramHandler>(std::make_unique<TallyUdpEcho>(tally, i));
    });
    std::string why;
    REQUIRE_MESSAGE(server.start(&why).ok(), why);
    REQUIRE(server.bound().size() == 2);
    const Address tcp = server.bound()[0].address;
    const Address udp = server.bound()[1].address;
    CHECK(tcp.port() != 0);
    CHECK(udp.port() != 0);
    Running run(server);

    uint64_t in = 0, out = 0;
    // 5 connections echo 1017..5017 bytes, then half-close: the server finishes and
    // closes on the peer's end of stream (CloseReason::peer).
    for (int i = 1; i <= 5; ++i) {
      Sock s = connect_to(tcp, {.timeout = 5s});
      REQUIRE(s.valid());
      std::string data = random_bytes(size_t(1000 * i + 17), uint64_t(i));
      std::replace(data.begin(), data.end(), '!', '?');  // '!' would make it close
      auto ex = exchange(s.get(), data, true, data.size(), true, uint64_t(i), 10s);
      CHECK_MESSAGE(ex.received == data, diff_bytes(ex.received, data));
      CHECK(ex.eof);
      in += data.size();
      out += data.size();
    }
    // 3 connections echo 100 bytes, then reset (CloseReason::reset).
    for (int i = 0; i < 3; ++i) {
      Sock s = connect_to(tcp, {.timeout = 5s});
      REQUIRE(s.valid());
      std::string data(100, char('a' + i));
      CHECK(echo_once(s.get(), data) == data);
      in += 100;
      out += 100;
      close_with_reset(s);
    }
    // 2 connections send "hello!": "hello" comes back and the server closes (local).
    for (int i = 0; i < 2; ++i) {
      Sock s = connect_to(tcp, {.timeout = 5s});
      REQUIRE(s.valid());
      REQUIRE(send_all(s.get(), "hello!"));
      CHECK(recv_exact(s.get(), 5) == "hello");
      CHECK(std::string(to_cstr(wait_end(s.get(), 3s))) == "eof");
      in += 6;
      out += 5;
    }
    // 1 connection echoing 6 MiB into a 4 KiB receive buffer: more than the kernel's
    // buffers hold (tcp_wmem tops out at 4 MiB), so part of the echo waits in the
    // server's output buffer and leaves later (the buffered write path is counted too).
    // Then a half-close: CloseReason::peer.
    {
      Sock s = connect_to(tcp, {.rcvbuf = 4 * int(KiB), .timeout = 5s});
      REQUIRE(s.valid());
      std::string data = random_bytes(6 * MiB, 99);
      std::replace(data.begin(), data.end(), '!', '?');
      auto ex = exchange(s.get(), data, true, data.size(), true, 99, 20s);
      CHECK_MESSAGE(ex.received == data, diff_bytes(ex.received, data));
      CHECK(ex.eof);
      in += data.size();
      out += data.size();
    }
    // 7 datagrams of 10..70 bytes, each from a socket of its own.
    uint64_t dbytes = 0;
    for (int i = 1; i <= 7; ++i) {
      Sock c;
      std::string d(size_t(10 * i), char('0' + i));
      CHECK(udp_roundtrip(c, udp, d) == d);
      dbytes += d.size();
    }
    REQUIRE(wait_until([&] { return server.totals().connections_open == 0; }, 5s));
    REQUIRE(wait_until([&] { return journal->closed.load() == 11; }, 5s));
    REQUIRE(wait_until([&] { return server.totals().datagrams_out == 7; }, 2s));

    auto check_totals = [&](const std::string& when) {
      CAPTURE(when);
      ServerTotals t = server.totals();
      CAPTURE(describe(t));
      CHECK(t.accepted == 11);
      CHECK(t.refused == 0);
      CHECK(t.accept_errors == 0);
      CHECK(t.dropped_no_fds == 0);
      CHECK(t.connections_open == 0);
      CHECK(t.tcp_bytes_in == in);
      CHECK(t.tcp_bytes_out == out);
      CHECK(t.closed_peer == 6);
      CHECK(t.closed_reset == 3);
      CHECK(t.closed_local == 2);
      CHECK(t.closed_aborted == 0);
      CHECK(t.closed_error == 0);
      CHECK(t.closed_shutdown == 0);
      CHECK(t.write_timeouts == 0);
      CHECK(t.datagrams_in == 7);
      CHECK(t.datagrams_out == 7);
      CHECK(t.datagrams_dropped == 0);
      CHECK(t.udp_peer_errors == 0);
      netloop::UdpStats st = server.datagram_stats(0);
      CHECK(st.datagrams_in == 7);
      CHECK(st.datagrams_out == 7);
      CHECK(st.bytes_in == dbytes);
      CHECK(st.bytes_out == dbytes);
      auto per_loop = server.accepted_per_loop();
      CAPTURE(describe(per_loop));
      REQUIRE(per_loop.size() == 2);
      CHECK(per_loop[0] + per_loop[1] == 11);
      if (!reuse_port) CHECK(per_loop == std::vector<uint64_t>{6, 5});  // dealt in turn
      auto dg = tally->datagrams_per_loop();
      CHECK(dg[0] + dg[1] == 7);
    };
    check_totals("while running");
    // The same numbers once the loops have finished and their listeners and sockets are
    // gone (their counters are kept).
    server.drain();
    REQUIRE(run.wait_returned(3s));
    check_totals("after run() returned");
    CHECK(journal->open_in_on_close.load() == 0);
  }
}

TEST_CASE("server totals: a drain retiring UDP sockets never makes a counter read high") {
  // A reader polls datagram_stats() and totals() while drain() retires the loops' UDP
  // sockets (their counters move to the retired totals). Neither may ever count a socket
  // twice: each read must say exactly the 3 datagrams that came. Repeated, since the
  // window is short (a reader between a loop's sockets and the retired totals).
  int over = 0, iterations = 0;
  uint64_t worst = 0;
  std::string which;
  for (; iterations < 300 && over == 0; ++iterations) {
    Server server(opts(2));
    server.add_datagram("udp-echo", Address::ipv4_loopback(0), [](netloop::EventLoop&, size_t) {
      return netloop::echo::make_udp_echo_handler();
    });
    REQUIRE(server.start().ok());
    const Address udp = server.bound()[0].address;
    Running run(server);
    Sock c;
    for (int i = 0; i < 3; ++i) REQUIRE(udp_roundtrip(c, udp, "x") == "x");
    REQUIRE(wait_until([&] { return server.datagram_stats(0).datagrams_in == 3; }, 2s));
    std::atomic<bool> reading{true};
    std::atomic<uint64_t> high_stats{0}, high_totals{0};
    std::thread reader([&] {
      while (reading.load()) {
        uint64_t a = server.datagram_stats(0).datagrams_in;
        uint64_t b = server.totals().datagrams_in;
        if (a > high_stats.load()) high_stats = a;
        if (b > high_totals.load()) high_totals = b;
      }
    });
    server.drain();
    bool returned = run.wait_returned(2s);
    reading = false;
    reader.join();
    REQUIRE(returned);
    if (high_stats.load() > 3 || high_totals.load() > 3) {
      ++over;
      worst = std::max(high_stats.load(), high_totals.load());
      which = high_stats.load() > 3 ? "datagram_stats(0)" : "totals()";
    }
    CHECK(server.datagram_stats(0).datagrams_in == 3);
    CHECK(server.totals().datagrams_in == 3);
  }
  CHECK_MESSAGE(over == 0, which << ".datagrams_in read " << worst
                                 << " (3 datagrams came) at iteration " << iterations);
}

TEST_CASE("server totals: readable from another thread while the loops are busy") {
  // A reader thread polls totals(), accepted_per_loop() and datagram_stats() while 2
  // loops echo; counters only grow, and end exact. (Under ThreadSanitizer this is the
  // race check of the lock-free counters.)
  auto tally = std::make_shared<LoopTally>(2);
  Server server(opts(2));
  server.add_stream("echo", Address::ipv4_loopback(0), tally_echo(tally));
  server.add_datagram("udp-echo", Address::ipv4_loopback(0), [tally](netloop::EventLoop&, size_t i) {
    return std::unique_ptr<netloop::DatagramHandler>(std::make_unique<TallyUdpEcho>(tally, i));
  });
  REQUIRE(server.start().ok());
  const Address tcp = server.bound()[0].address;
  const Address udp = server.bound()[1].address;
  Running run(server);

  std::atomic<bool> reading{true};
  std::atomic<int> went_down{0};
  std::thread reader([&] {
    ServerTotals last;
    while (reading.load()) {
      ServerTotals t = server.totals();
      if (t.tcp_bytes_in < last.tcp_bytes_in || t.accepted < last.accepted ||
          t.datagrams_in < last.datagrams_in)
        ++went_down;
      last = t;
      (void)server.accepted_per_loop();
      (void)server.datagram_stats(0);
    }
  });
  constexpr int kConns = 16;
  constexpr size_t kBytes = 64 * KiB;
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < kConns; ++i) {
    clients.emplace_back([&, i] {
      Sock s = connect_to(tcp, {.timeout = 5s});
      if (!s.valid()) return;
      std::string data = random_bytes(kBytes, uint64_t(100 + i));
      auto ex = exchange(s.get(), data, true, data.size(), true, uint64_t(i), 10s);
      Sock d;
      bool pong = udp_roundtrip(d, udp, "ping") == "ping";
      if (ex.received == data && ex.eof && pong) ++ok;
    });
  }
  for (auto& c : clients) c.join();
  CHECK(ok.load() == kConns);
  CHECK(wait_until([&] { return server.totals().connections_open == 0; }, 5s));
  CHECK(wait_until([&] { return server.totals().datagrams_out == kConns; }, 2s));
  reading = false;
  reader.join();
  CHECK(went_down.load() == 0);
  ServerTotals t = server.totals();
  CAPTURE(describe(t));
  CHECK(t.accepted == kConns);
  CHECK(t.tcp_bytes_in == kConns * kBytes);
  CHECK(t.tcp_bytes_out == kConns * kBytes);
  CHECK(t.datagrams_in == kConns);
  CHECK(t.datagrams_out == kConns);
}

// The header's own example, compiled as written (with -Wextra: no missing-initializer
// warnings from named fields).
TEST_CASE("server: registration with named fields; Loops::first serves on loop 0 only") {
  Server server({.threads = 2});
  auto tally = std::make_shared<LoopTally>(2);
  server.add_stream("first-only", Address::ipv4_loopback(0), [tally](netloop::EventLoop&, size_t i) {
    return StreamService{.factory = [tally, i] { return std::make_unique<TallyEcho>(tally, i); }};
  }, netloop::Loops::first);
  std::string why;
  REQUIRE_MESSAGE(server.start(&why).ok(), why);
  std::thread runner([&server] { server.run(); });
  const Address where = server.bound()[0].address;
  for (int i = 0; i < 8; ++i) {
    Sock s = connect_to(where);
    REQUIRE(s.valid());
    REQUIRE(send_all(s.get(), "ping"));
    CHECK(recv_exact(s.get(), 4) == "ping");
  }
  server.stop();
  runner.join();
  CHECK(tally->opened[0].load() == 8);
  CHECK(tally->opened[1].load() == 0);
}
