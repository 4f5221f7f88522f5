// LoadClient: connecting, the send/verify/time cycle of each connection, and the phases
// of a run (connect, warm-up, measure).
#include "client.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

namespace netloop::load {
namespace {

constexpr size_t kReadBytes = 64 * 1024;
constexpr auto kConnectTimeout = seconds(10);
constexpr size_t kMaxErrorLines = 10;
// Message `seq` of connection `id` is the window of the pattern starting at
// (id * kConnStride + seq) % kPatternPeriod: consecutive messages, and different
// connections, differ, so a lost, repeated, reordered or crossed message shows.
constexpr size_t kPatternPeriod = 251;  // prime
constexpr size_t kConnStride = 7919;

uint64_t now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

std::string describe(int err) {
  switch (err) {
    case ECONNRESET: return "connection reset by the server (ECONNRESET)";
    case EPIPE: return "broken pipe: the server closed the connection (EPIPE)";
    case ECONNREFUSED: return "connection refused (ECONNREFUSED): is the server listening?";
    case ETIMEDOUT: return "timed out (ETIMEDOUT)";
    default: return std::string(std::strerror(err));
  }
}

// One descriptor per connection plus a few for the loop: raise the soft limit toward the
// hard one when the run needs it.
bool ensure_descriptors(size_t connections, std::string* why) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) < 0) return true;
  rlim_t need = rlim_t(connections) + 32;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    rlimit want = rl;
    want.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) ? need : rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &want);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    *why = "--connections " + std::to_string(connections) + " needs about " +
           std::to_string(need) + " file descriptors but the limit is " +
           std::to_string(rl.rlim_cur) + " (raise it with ulimit -n)";
    return false;
  }
  return true;
}

}  // namespace

// One client connection: a nonblocking socket that keeps `pipeline` messages in flight.
class LoadClient::Conn {
 public:
  Conn(LoadClient& client, size_t id)
      : client_(client),
        id_(id),
        size_(client.options_.size),
        depth_(client.options_.pipeline),
        watcher_(client.loop_, [this](uint32_t r) { on_io(r); }),
        stamps_(new uint64_t[client.options_.pipeline]) {}

  // Starts a nonblocking connect. An error here means the socket could not even be made.
  std::error_code open(const Address& target) {
    fd_.reset(::socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_) return last_error();
    int one = 1;
    // Pipelined small messages must leave at once, as the server's replies do.
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_.get(), target.sockaddr_ptr(), target.length()) < 0 && errno != EINPROGRESS) {
      int err = errno;
      fd_.reset();
      connecting_ = false;
      client_.on_connect_failed(describe(err));
      return {};
    }
    // Writable once the handshake is done (or has failed).
    if (auto ec = watcher_.start(fd_.get(), Interest::write)) return ec;
    return {};
  }

  void close() noexcept {
    watcher_.stop();
    fd_.reset();
  }

  bool connecting() const noexcept { return connecting_; }
  bool open_now() const noexcept { return fd_.valid(); }

  void start_sending() { flush(now_ns()); }

 private:
  void on_io(uint32_t ready) {
    if (connecting_) {
      finish_connect(ready);
      return;
    }
    if (ready & ready::writable) {
      if (!flush(now_ns())) return;
    }
    if (ready & (ready::readable | ready::hangup | ready::error)) on_readable();
  }

  void finish_connect(uint32_t ready) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err == 0 && (ready & (ready::hangup | ready::error))) err = ECONNREFUSED;
    connecting_ = false;
    if (err) {
      close();
      client_.on_connect_failed(describe(err));
      return;
    }
    watcher_.set_interest(Interest::read);
    client_.on_connected();
  }

  void on_readable() {
    char* buf = client_.scratch_.get();
    ssize_t n = ::recv(fd_.get(), buf, kReadBytes, 0);
    if (n > 0) {
      uint64_t now = now_ns();
      if (bytes_in_ + uint64_t(n) > bytes_out_) {
        ++client_.tally_.mismatches;
        lose("the server echoed " + std::to_string(bytes_in_ + uint64_t(n) - bytes_out_) +
             " more bytes than were sent");
        return;
      }
      bytes_in_ += uint64_t(n);
      consume(buf, size_t(n), now);
      flush(now);
      return;
    }
    if (n == 0) {
      lose("the server closed the connection early (EOF) after " + std::to_string(received_) +
           " messages, with " + std::to_string(sent_ - received_ + (send_pos_ ? 1 : 0)) +
           " in flight");
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    lose(describe(errno));
  }

  // Checks echoed bytes against what was sent and completes messages.
  void consume(const char* data, size_t n, uint64_t now) {
    while (n > 0) {
      size_t take = std::min(n, size_ - recv_pos_);
      const char* want = client_.pattern_for(id_, received_) + recv_pos_;
      if (std::memcmp(data, want, take) != 0) corrupt_ = true;
      data += take;
      n -= take;
      recv_pos_ += take;
      if (recv_pos_ < size_) break;
      complete(now);
    }
  }

  void complete(uint64_t now) {
    if (corrupt_) {
      corrupt_ = false;
      ++client_.tally_.mismatches;
      if (client_.tally_.mismatches <= kMaxErrorLines)
        client_.report_error(id_, "echo of message " + std::to_string(received_) +
                                      " differs from what was sent");
    }
    uint64_t sent_at = stamps_[received_ % depth_];
    if (client_.phase_ == Phase::measuring) {
      client_.latency_.record(now - sent_at);
      ++client_.tally_.messages;
    }
    if (client_.phase_ != Phase::done) ++client_.tally_.total_messages;
    ++received_;
    recv_pos_ = 0;
  }

  // Sends every message the pipeline allows, in one writev; asks for write interest only
  // while the kernel pushes back. Returns false if the connection was lost.
  bool flush(uint64_t now) {
    if (client_.phase_ == Phase::connecting || client_.phase_ == Phase::done) return true;
    uint64_t limit = received_ + depth_;
    // A message's clock starts when it may be sent, so time spent queued behind a full
    // socket buffer counts as latency.
    for (; stamped_ < limit; ++stamped_) stamps_[stamped_ % depth_] = now;
    if (sent_ < limit) {
      iovec iov[kMaxPipeline];
      size_t count = 0;
      for (uint64_t seq = sent_; seq < limit; ++seq, ++count) {
        size_t skip = seq == sent_ ? send_pos_ : 0;
        iov[count].iov_base = const_cast<char*>(client_.pattern_for(id_, seq) + skip);
        iov[count].iov_len = size_ - skip;
      }
      ssize_t w;
      if (count == 1) {
        w = ::send(fd_.get(), iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
      } else {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = count;
        w = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
      }
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        lose(describe(errno));
        return false;
      }
      if (w > 0) advance(size_t(w));
    }
    watcher_.set_interest(sent_ < limit ? Interest::read_write : Interest::read);
    return true;
  }

  void advance(size_t n) {
    bytes_out_ += n;
    while (n > 0) {
      size_t left = size_ - send_pos_;
      if (n < left) {
        send_pos_ += n;
        return;
      }
      n -= left;
      send_pos_ = 0;
      ++sent_;
    }
  }

  void lose(const std::string& message) {
    close();
    ++client_.tally_.errors;
    client_.report_error(id_, message);
    client_.connection_lost();
  }

  LoadClient& client_;
  size_t id_;
  size_t size_;
  size_t depth_;
  Fd fd_;
  IoWatcher watcher_;  // declared after fd_: stopped before the descriptor closes
  std::unique_ptr<uint64_t[]> stamps_;  // when each in-flight message became sendable
  uint64_t sent_ = 0;      // messages written in full
  uint64_t stamped_ = 0;   // messages whose send time is recorded
  uint64_t received_ = 0;  // messages echoed in full
  size_t send_pos_ = 0;    // bytes of message sent_ already written
  size_t recv_pos_ = 0;    // bytes of message received_ already echoed
  uint64_t bytes_out_ = 0;
  uint64_t bytes_in_ = 0;
  bool connecting_ = true;
  bool corrupt_ = false;  // the message being received has a wrong byte
};

LoadClient::LoadClient(EventLoop& loop, const LoadOptions& options)
    : loop_(loop), options_(options), scratch_(new char[kReadBytes]) {
  pattern_.resize(options_.size + kPatternPeriod);
  uint64_t x = 0x9E3779B97F4A7C15ull;  // xorshift64: bytes without short repeats
  for (char& c : pattern_) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = char(x >> 56);
  }
}

LoadClient::~LoadClient() = default;

const char* LoadClient::pattern_for(size_t conn_id, uint64_t seq) const noexcept {
  return pattern_.data() + (conn_id * kConnStride + seq) % kPatternPeriod;
}

double LoadClient::measured_seconds() const noexcept {
  if (measure_start_ == TimePoint{}) return 0.0;
  TimePoint end = measure_end_ == TimePoint{} ? Clock::now() : measure_end_;
  return std::chrono::duration<double>(end - measure_start_).count();
}

bool LoadClient::open_all(std::string* why) {
  if (!ensure_descriptors(options_.connections, why)) return false;
  conns_.reserve(options_.connections);
  for (size_t i = 0; i < options_.connections; ++i) {
    conns_.push_back(std::make_unique<Conn>(*this, i));
    if (auto ec = conns_.back()->open(options_.target)) {
      *why = "cannot open connection " + std::to_string(i + 1) + " of " +
             std::to_string(options_.connections) + ": " + ec.message();
      return false;
    }
  }
  return true;
}

bool LoadClient::run(std::string* why) {
  for (int sig : {SIGINT, SIGTERM}) {
    loop_.on_signal(sig, [this] {
      interrupted_ = true;
      finish();
    });
  }
  if (!open_all(why)) return false;
  TimerId connect_timer = loop_.run_after(kConnectTimeout, [this] {
    if (phase_ != Phase::connecting) return;
    for (auto& c : conns_) {
      if (c->connecting()) {
        c->close();
        on_connect_failed("no answer within " + std::to_string(kConnectTimeout.count()) + " s");
      }
    }
  });
  // Every connect may already have failed inside open_all (ENETUNREACH and the like).
  if (!start_failed_) loop_.run();
  loop_.cancel_timer(connect_timer);
  if (start_failed_) {
    *why = "connect to " + options_.target.to_string() + " failed: " + first_connect_error_ +
           " (" + std::to_string(connect_failed_) + " of " + std::to_string(options_.connections) +
           " connections)";
    return false;
  }
  return true;
}

void LoadClient::on_connected() {
  ++connected_;
  ++live_;
  if (connected_ == options_.connections) begin();
}

void LoadClient::on_connect_failed(const std::string& message) {
  if (connect_failed_++ == 0) first_connect_error_ = message;
  // Wait until every attempt has an answer, then give up on the run.
  if (connected_ + connect_failed_ == options_.connections) {
    start_failed_ = true;
    phase_ = Phase::done;
    loop_.stop();
  }
}

void LoadClient::begin() {
  phase_ = options_.warmup > 0 ? Phase::warmup : Phase::measuring;
  if (phase_ == Phase::measuring) start_measuring();
  else
    loop_.run_after(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(options_.warmup)),
                    [this] { start_measuring(); });
  for (auto& c : conns_) {
    if (phase_ == Phase::done) break;  // every connection already lost
    if (c->open_now()) c->start_sending();
  }
}

void LoadClient::start_measuring() {
  if (phase_ == Phase::done) return;
  phase_ = Phase::measuring;
  latency_.clear();
  tally_.messages = 0;
  measure_start_ = Clock::now();
  loop_.run_after(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(options_.duration)),
                  [this] { finish(); });
}

void LoadClient::finish() {
  if (phase_ == Phase::done) return;
  if (measure_start_ != TimePoint{}) measure_end_ = Clock::now();
  phase_ = Phase::done;
  loop_.stop();
}

void LoadClient::report_error(size_t conn_id, const std::string& message) {
  if (errors_printed_ < kMaxErrorLines) {
    std::fprintf(stderr, "netloop-load: connection %zu: %s\n", conn_id + 1, message.c_str());
  } else if (errors_printed_ == kMaxErrorLines) {
    std::fprintf(stderr, "netloop-load: further errors are counted but not shown\n");
  }
  ++errors_printed_;
}

void LoadClient::connection_lost() {
  if (live_ > 0) --live_;
  if (live_ == 0 && phase_ != Phase::connecting) finish();
}

}  // namespace netloop::load
