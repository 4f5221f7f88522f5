// Shared helpers for the integration tests: a server running an EventLoop + TcpListener
// on a background thread, an echo handler that keeps a journal, and plain client sockets
// with timeouts (so no test can hang).
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echo/tcp_echo.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/protocol.hpp"
#include "netloop/result.hpp"
#include "netloop/tcp_connection.hpp"
#include "netloop/tcp_listener.hpp"

namespace nltest {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t KiB = 1024;
constexpr size_t MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Small utilities

// Polls `pred` every few milliseconds until it holds or `timeout` passes.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = SteadyClock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

inline std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  size_t i = 0;
  while (i < n) {
    uint64_t v = rng();
    for (int k = 0; k < 8 && i < n; ++k, ++i) s[i] = char(v >> (8 * k));
  }
  return s;
}

// "" when `got` equals `want`, else a short description of the first difference (so a
// failed check does not print megabytes).
inline std::string diff_bytes(std::string_view got, std::string_view want) {
  if (got == want) return {};
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
         "; first difference at offset " + std::to_string(i);
}

// Names of the poller backends this build and kernel can run (epoll, poll...).
inline std::vector<std::string> usable_backends() {
  std::vector<std::string> out;
  for (const auto& b : netloop::available_backends())
    if (b.available) out.push_back(b.name);
  return out;
}

// ---------------------------------------------------------------------------------------
// Client sockets

// Owns one client descriptor.
class Sock {
 public:
  Sock() = default;
  explicit Sock(int fd) : fd_(fd) {}
  Sock(Sock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Sock& operator=(Sock&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Sock() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

inline void set_timeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = time_t(t.count() / 1000);
  tv.tv_usec = suseconds_t((t.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline void set_nonblocking(int fd, bool on = true) {
  int fl = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

struct ConnectOptions {
  int rcvbuf = 0;  // SO_RCVBUF before connect (0: kernel default)
  int sndbuf = 0;
  std::chrono::milliseconds timeout = 10s;  // SO_RCVTIMEO / SO_SNDTIMEO
};

// Blocking connect with send/receive timeouts; an invalid Sock (errno set) on failure.
inline Sock connect_to(const netloop::Address& a, const ConnectOptions& o = {}) {
  Sock s(::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return s;
  if (o.rcvbuf) ::setsockopt(s.get(), SOL_SOCKET, SO_RCVBUF, &o.rcvbuf, sizeof o.rcvbuf);
  if (o.sndbuf) ::setsockopt(s.get(), SOL_SOCKET, SO_SNDBUF, &o.sndbuf, sizeof o.sndbuf);
  set_timeouts(s.get(), o.timeout);
  int r;
  do {
    r = ::connect(s.get(), a.sockaddr_ptr(), a.length());
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    s.reset();
    errno = e;
  }
  return s;
}

// Blocking send of everything (the socket's SO_SNDTIMEO bounds each wait).
inline bool send_all(int fd, std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

// Blocking receive of exactly `n` bytes; returns what arrived before EOF, error or
// timeout (SO_RCVTIMEO) if that is fewer.
inline std::string recv_exact(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += size_t(r);
  }
  out.resize(got);
  return out;
}

// How a stream ended, as seen by a reading client.
enum class Ending { eof, reset, other_error, timeout, unexpected_data };

inline const char* to_cstr(Ending e) {
  switch (e) {
    case Ending::eof: return "eof";
    case Ending::reset: return "reset";
    case Ending::other_error: return "other_error";
    case Ending::timeout: return "timeout";
    case Ending::unexpected_data: return "unexpected_data";
  }
  return "?";
}

// The accept deferral (TCP_DEFER_ACCEPT) the kernel reports for a listening socket, in
// seconds (rounded up to a whole number of SYN-ACK retransmissions); 0: accepts are not
// deferred, or the platform has no such option.
inline int accept_deferral_seconds(int fd) {
#ifdef TCP_DEFER_ACCEPT
  int secs = -1;
  socklen_t len = sizeof secs;
  REQUIRE(::getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, &len) == 0);
  return secs;
#else
  (void)fd;
  return 0;
#endif
}

// Waits (at most `timeout`) for the stream to end; data arriving first counts as
// unexpected.
inline Ending wait_end(int fd, std::chrono::milliseconds timeout = 5s) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, int(timeout.count()));
  } while (r < 0 && errno == EINTR);
  if (r == 0) return Ending::timeout;
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
  if (n == 0) return Ending::eof;
  if (n > 0) return Ending::unexpected_data;
  if (errno == ECONNRESET || errno == EPIPE) return Ending::reset;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return Ending::timeout;
  return Ending::other_error;
}

// One socket driven by poll(): sends `data` in random-sized chunks while reading back.
// With `half_close`, shuts down the write side after the last byte. Reads until
// `expect` bytes arrived (when `until_eof` is false) or until the stream ends.
struct Exchange {
  std::string received;
  bool eof = false;
  int error = 0;  // errno of a failed send/recv
  bool timed_out = false;
  size_t sent = 0;
};

inline Exchange exchange(int fd, std::string_view data, bool half_close, size_t expect,
                         bool until_eof, uint64_t seed,
                         std::chrono::milliseconds timeout = 15s) {
  Exchange ex;
  std::mt19937_64 rng(seed);
  set_nonblocking(fd);
  bool shut = false;
  std::vector<char> buf(64 * KiB);
  auto deadline = SteadyClock::now() + timeout;
  while (true) {
    if (!shut && half_close && ex.sent == data.size()) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    if (!until_eof && ex.received.size() >= expect) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      ex.timed_out = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (ex.sent < data.size() && ex.error == 0) p.events |= POLLOUT;
    int r = ::poll(&p, 1, int(std::min<long>(left.count(), 200)));
    if (r < 0 && errno != EINTR) {
      ex.error = errno;
      break;
    }
    if (r <= 0) continue;
    if ((p.revents & POLLOUT) && ex.sent < data.size()) {
      size_t chunk = std::min<size_t>(data.size() - ex.sent, 1 + rng() % (16 * KiB));
      ssize_t n = ::send(fd, data.data() + ex.sent, chunk, MSG_NOSIGNAL);
      if (n > 0) {
        ex.sent += size_t(n);
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        ex.error = errno;  // keep reading: what was echoed so far may still arrive
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      size_t want = 1 + rng() % buf.size();
      ssize_t n = ::recv(fd, buf.data(), want, 0);
      if (n > 0) {
        ex.received.append(buf.data(), size_t(n));
      } else if (n == 0) {
        ex.eof = true;
        break;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        ex.error = errno;
        break;
      }
    }
  }
  set_nonblocking(fd, false);
  return ex;
}

// A simple blocking round trip: send `msg`, read the same number of bytes back.
inline std::string echo_once(int fd, std::string_view msg) {
  if (!send_all(fd, msg)) return "<send failed: " + std::string(std::strerror(errno)) + ">";
  return recv_exact(fd, msg.size());
}

// ---------------------------------------------------------------------------------------
// A journaling echo handler

// Shared record of what the handlers of one server saw (written on the loop thread).
struct Journal {
  std::atomic<int> created{0};
  std::atomic<int> destroyed{0};
  std::atomic<int> opened{0};
  std::atomic<int> closed{0};
  std::atomic<int> open_in_on_close{0};  // is_open() was still true in on_close: a bug
  std::mutex m;
  std::vector<netloop::CloseInfo> closes;
  std::vector<netloop::Address> peers;
  std::vector<netloop::Address> locals;

  std::vector<netloop::CloseInfo> close_infos() {
    std::lock_guard lock(m);
    return closes;
  }
  std::vector<netloop::Address> peer_addresses() {
    std::lock_guard lock(m);
    return peers;
  }
  int live() const { return created.load() - destroyed.load(); }
};

// Echoes every byte. When `close_on` (or `abort_on`) appears in the input, echoes what
// came before it, then closes (or aborts), and pokes the connection a little afterwards
// to check those calls are harmless once it is closing.
struct EchoBehavior {
  char close_on = 0;
  char abort_on = 0;
};

class JournalEcho final : public netloop::StreamHandler {
 public:
  JournalEcho(std::shared_ptr<Journal> j, EchoBehavior b) : j_(std::move(j)), b_(b) {
    ++j_->created;
  }
  ~JournalEcho() override { ++j_->destroyed; }

  void on_open(netloop::Connection& c) override {
    ++j_->opened;
    std::lock_guard lock(j_->m);
    j_->peers.push_back(c.peer_address());
    j_->locals.push_back(c.local_address());
  }

  void on_data(netloop::Connection& c, netloop::Buffer& in) override {
    std::string_view v = in.view();
    size_t cut = v.size();
    char trigger = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      if ((b_.close_on && v[i] == b_.close_on) || (b_.abort_on && v[i] == b_.abort_on)) {
        cut = i;
        trigger = v[i];
        break;
      }
    }
    c.send(v.data(), cut);
    in.consume(in.size());
    if (!trigger) return;
    if (trigger == b_.close_on) {
      c.close();
      c.send("after-close");  // ignored: the connection is closing
      c.close();              // idempotent
      c.pause_reading();
      c.resume_reading();
    } else {
      c.abort();
      c.send("after-abort");
      c.close();
      c.abort();
    }
  }

  void on_close(netloop::Connection& c, const netloop::CloseInfo& info) override {
    if (c.is_open()) ++j_->open_in_on_close;
    ++j_->closed;
    std::lock_guard lock(j_->m);
    j_->closes.push_back(info);
  }

 private:
  std::shared_ptr<Journal> j_;
  EchoBehavior b_;
};

inline netloop::StreamHandlerFactory journal_factory(std::shared_ptr<Journal> j,
                                                     EchoBehavior b = {}) {
  return [j, b] { return std::make_unique<JournalEcho>(j, b); };
}

// ---------------------------------------------------------------------------------------
// The server: EventLoop + TcpListener on a background thread

struct ConnInfo {
  size_t pending = 0;
  size_t peak_output = 0;
  size_t input_capacity = 0;
  size_t output_capacity = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  netloop::Address peer;
  netloop::Address local;
};

// An event loop on a thread of its own serving one Service (a TcpListener, a UdpSocket)
// made on that thread by `make`; call() runs a function there and waits for its result.
// The base of ServerThread and of test_udp's UdpServerThread.
template <class Service>
class LoopThread {
 public:
  using Make = std::function<netloop::Result<std::unique_ptr<Service>>(netloop::EventLoop&)>;

  LoopThread() = default;
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;
  ~LoopThread() { stop(); }

  // Creates the loop and the service on the new thread; returns the error of either.
  std::error_code start(std::string backend, Make make) {
    std::promise<std::error_code> ready;
    auto fut = ready.get_future();
    thread_ = std::thread([this, backend = std::move(backend), make = std::move(make),
                           ready = std::move(ready)]() mutable {
      std::string why;
      auto loop = netloop::EventLoop::create(backend, &why);
      if (!loop) {
        ready.set_value(loop.error());
        return;
      }
      auto service = make(**loop);
      if (!service) {
        ready.set_value(service.error());
        return;
      }
      std::unique_ptr<netloop::EventLoop> owned = std::move(*loop);
      loop_ = owned.get();
      service_ = std::move(*service);
      address_ = service_->local_address();
      backend_ = std::string(owned->backend_name());
      ready.set_value({});
      owned->run();
      service_.reset();    // on the loop thread, like everything else
      owned->run_once(0);  // dispose of what the service's destructor closed
    });
    auto ec = fut.get();
    if (ec) {
      thread_.join();
      loop_ = nullptr;
    }
    return ec;
  }

  void stop() {
    if (!thread_.joinable()) return;
    if (loop_) loop_->stop();
    thread_.join();
    loop_ = nullptr;
  }

  const netloop::Address& address() const { return address_; }
  const std::string& backend() const { return backend_; }

  // Runs fn(loop, service-or-null) on the loop thread and returns its result.
  template <class F>
  auto call(F fn) {
    using R = std::invoke_result_t<F&, netloop::EventLoop&, Service*>;
    REQUIRE_MESSAGE(loop_ != nullptr, "server is not running");
    auto p = std::make_shared<std::promise<R>>();
    auto fut = p->get_future();
    loop_->post([this, p, fn = std::move(fn)]() mutable {
      if constexpr (std::is_void_v<R>) {
        fn(*loop_, service_.get());
        p->set_value();
      } else {
        p->set_value(fn(*loop_, service_.get()));
      }
    });
    if (fut.wait_for(10s) != std::future_status::ready)
      FAIL("the loop thread did not run a posted function within 10 s");
    return fut.get();
  }

 protected:
  // Destroys the service on the loop thread (the loop goes on running).
  void destroy_service() {
    call([this](netloop::EventLoop&, Service*) { service_.reset(); });
  }

 private:
  std::thread thread_;
  netloop::EventLoop* loop_ = nullptr;
  std::unique_ptr<Service> service_;  // loop thread only
  netloop::Address address_;
  std::string backend_;
};

// A TcpListener (the TCP echo by default) on a loop thread.
class ServerThread : public LoopThread<netloop::TcpListener> {
 public:
  struct Config {
    std::string backend;  // "" = default
    netloop::Address address = netloop::Address::ipv4_loopback(0);
    netloop::StreamHandlerFactory factory = netloop::echo::tcp_echo_factory();
    netloop::ListenerOptions options;
  };

  // Creates the loop and the listener on the new thread; returns the listen error.
  std::error_code start(Config cfg) {
    std::string backend = cfg.backend;
    return LoopThread::start(std::move(backend), [cfg = std::move(cfg)](netloop::EventLoop& loop) {
      return netloop::TcpListener::listen(loop, cfg.address, cfg.factory, cfg.options);
    });
  }

  size_t connection_count() {
    return call([](netloop::EventLoop&, netloop::TcpListener* l) {
      return l ? l->connection_count() : size_t{0};
    });
  }
  netloop::ListenerStats stats() {
    return call([](netloop::EventLoop&, netloop::TcpListener* l) {
      return l ? l->stats() : netloop::ListenerStats{};
    });
  }
  std::vector<ConnInfo> connections() {
    return call([](netloop::EventLoop&, netloop::TcpListener* l) {
      std::vector<ConnInfo> v;
      if (l)
        l->for_each_connection([&](netloop::TcpConnection& c) {
          v.push_back({c.pending_output(), c.peak_output(), c.input_capacity(),
                       c.output_capacity(), c.bytes_in(), c.bytes_out(), c.peer_address(),
                       c.local_address()});
        });
      return v;
    });
  }
  // Destroys the listener (and with it every live connection) on the loop thread.
  void destroy_listener() { destroy_service(); }
};

// ---------------------------------------------------------------------------------------
// Files

// Writes `content` to `p`, creating its parent directories.
inline void write_file(const std::filesystem::path& p, std::string_view content) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(content.data(), std::streamsize(content.size()));
  f.close();
  REQUIRE_MESSAGE(f.good(), "cannot write " << p.string());
}

// Runs `loop` on this thread until `pred` holds or `timeout` passes.
template <class Pred>
bool run_until(netloop::EventLoop& loop, Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = SteadyClock::now() + timeout;
  while (!pred()) {
    if (SteadyClock::now() >= deadline) return false;
    loop.run_once(10);
  }
  return true;
}

inline std::unique_ptr<netloop::EventLoop> make_loop(const std::string& backend = {}) {
  auto l = netloop::EventLoop::create(backend);
  REQUIRE_MESSAGE(l, l.error().message());
  return std::move(*l);
}

// Descriptors this process has open now.
inline size_t open_fds() {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

// A directory under the system's temporary directory, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "netloop-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) FAIL("mkdtemp: " << std::strerror(errno));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(std::string_view rel) const { return path_ / rel; }
  // Writes `content` to the file `rel` inside (directories created as needed).
  void write(std::string_view rel, std::string_view content) const { write_file(path_ / rel, content); }

 private:
  std::filesystem::path path_;
};

}  // namespace nltest
