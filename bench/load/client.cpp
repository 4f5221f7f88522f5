// LoadClient: connecting, the send/verify/time cycle of each connection, and the phases
// of a run (connect, warm-up, measure). UdpLoadClient: the same for UDP echo, with loss
// detection by timeout (after LoadClient, at the end of this file).
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

#include "netloop/io_watcher.hpp"

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
bool ensure_descriptors(size_t connections, std::string* why,
                        const char* flag = "--connections") {
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
    *why = std::string(flag) + " " + std::to_string(connections) + " needs about " +
           std::to_string(need) + " file descriptors but the limit is " +
           std::to_string(rl.rlim_cur) + " (raise it with ulimit -n)";
    return false;
  }
  return true;
}

// Bytes without short repeats (xorshift64), the source of every message's payload.
void fill_pattern(std::vector<char>& pattern) {
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (char& c : pattern) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = char(x >> 56);
  }
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
    if (auto r = watcher_.start(fd_.get(), Interest::write); !r) return r.error();
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
  fill_pattern(pattern_);
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

// ---------------------------------------------------------------------------------------
// UdpLoadClient
//
// Datagram layout: client id (4 bytes) and sequence number (8 bytes), in host order (the
// echo comes back to the host that wrote them), then size - 12 payload bytes: the pattern
// window of (client id, sequence number). Slot `i` of a client (one of its K datagrams in
// flight) uses the sequence numbers i, i + K, i + 2K...: the slot of an echo is its
// sequence number mod K, and an echo is current only if it carries its slot's sequence
// number while that datagram is in flight.

namespace {

constexpr size_t kUdpBatch = 64;  // datagrams per recvmmsg/sendmmsg call
constexpr Duration kMinNoEchoGrace = seconds(1);

bool is_icmp_error(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
         err == ENETDOWN;
}

}  // namespace

class UdpLoadClient::Client {
 public:
  Client(UdpLoadClient& owner, uint32_t id)
      : owner_(owner),
        id_(id),
        size_(owner.options_.size),
        depth_(uint32_t(owner.options_.pipeline)),
        watcher_(owner.loop_, [this](uint32_t) { on_readable(); }),
        slots_(new Slot[owner.options_.pipeline]) {
    for (uint32_t i = 0; i < depth_; ++i) slots_[i].seq = i;
    queued_.reserve(depth_);
  }

  // A socket of its own (its own port), connected to the target: the kernel then delivers
  // only the target's datagrams to it, and reports the target's ICMP errors on it.
  std::error_code open(const Address& target) {
    fd_.reset(::socket(target.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_) return last_error();
    // Room for every echo in flight (payload plus the kernel's per-datagram overhead), so
    // the client's own socket never drops what the server sent back.
    size_t want = size_t(depth_) * (size_ + 1024);
    if (want > 128 * 1024) {
      int bytes = int(std::min<size_t>(want, 64u * 1024 * 1024));
      ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
      ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    }
    if (::connect(fd_.get(), target.sockaddr_ptr(), target.length()) < 0) return last_error();
    return watcher_.start(fd_.get(), Interest::read).error();
  }

  void close() noexcept {
    watcher_.stop();
    fd_.reset();
  }

  // The first sends of a run: every slot.
  void start(uint64_t now) {
    for (uint32_t i = 0; i < depth_; ++i) queue(i);
    flush(now);
  }

  // The deadline of datagram `seq` passed. True if it was still in flight: it is lost
  // now, and its slot is queued to go again under the next sequence number.
  bool expire(uint64_t seq) {
    uint32_t slot = uint32_t(seq % depth_);
    Slot& s = slots_[slot];
    if (s.seq != seq || s.state != State::in_flight) return false;  // echoed in time
    s.seq += depth_;
    queue(slot);
    return true;
  }

  // A slot whose send the kernel refused: queue it again (same sequence number).
  void retry(uint32_t slot) {
    if (slots_[slot].state == State::unsent) queue(slot);
  }

  bool listed = false;  // in the owner's dirty list

  // Sends every queued slot, in batches of sendmmsg.
  void flush(uint64_t now) {
    listed = false;
    if (queued_.empty()) return;
    if (owner_.phase_ == Phase::done) {
      queued_.clear();
      return;
    }
    UdpTally& t = owner_.tally_;
    const size_t payload = size_ - kUdpHeaderBytes;
    size_t i = 0;
    while (i < queued_.size()) {
      const size_t k = std::min(queued_.size() - i, kUdpBatch);
      unsigned char header[kUdpBatch][kUdpHeaderBytes];
      iovec iov[kUdpBatch][2];
      mmsghdr msgs[kUdpBatch];
      for (size_t j = 0; j < k; ++j) {
        uint64_t seq = slots_[queued_[i + j]].seq;
        std::memcpy(header[j], &id_, 4);
        std::memcpy(header[j] + 4, &seq, 8);
        iov[j][0] = {header[j], kUdpHeaderBytes};
        iov[j][1] = {const_cast<char*>(owner_.pattern_for(id_, seq)), payload};
        msgs[j].msg_hdr = {};
        msgs[j].msg_hdr.msg_iov = iov[j];
        msgs[j].msg_hdr.msg_iovlen = payload ? 2 : 1;
        msgs[j].msg_len = 0;
      }
      int r;
      if (k == 1) {
        r = ::sendmsg(fd_.get(), &msgs[0].msg_hdr, 0) < 0 ? -1 : 1;
      } else {
        r = ::sendmmsg(fd_.get(), msgs, unsigned(k), 0);
      }
      ++t.send_calls;
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
          // The send buffer is full: the rest waits for the next tick.
          for (; i < queued_.size(); ++i) send_failed(queued_[i], err);
          break;
        }
        // An ICMP error of an earlier datagram (reported once, then cleared) or a real
        // error: this datagram was not sent; go on with the next.
        send_failed(queued_[i], err);
        ++i;
        continue;
      }
      const uint64_t deadline = now + owner_.timeout_ns_;
      for (int j = 0; j < r; ++j) {
        Slot& s = slots_[queued_[i + size_t(j)]];
        s.state = State::in_flight;
        s.sent_ns = now;
        owner_.watch(id_, s.seq, deadline);
      }
      if (owner_.phase_ == Phase::measuring) t.sent += uint64_t(r);
      t.total_sent += uint64_t(r);
      i += size_t(r);
    }
    queued_.clear();
  }

 private:
  enum class State : uint8_t { queued, in_flight, unsent };
  struct Slot {
    uint64_t seq = 0;      // the slot's current sequence number
    uint64_t sent_ns = 0;  // when it became sendable (queued for the send that carried it)
    State state = State::queued;
  };

  void queue(uint32_t slot) {
    slots_[slot].state = State::queued;
    queued_.push_back(slot);
  }

  void send_failed(uint32_t slot, int err) {
    slots_[slot].state = State::unsent;
    owner_.retry_later(id_, slot);
    UdpTally& t = owner_.tally_;
    if (is_icmp_error(err)) {
      ++t.icmp_errors;
      return;
    }
    ++t.send_errors;
    if (err != EAGAIN && err != EWOULDBLOCK && err != ENOBUFS && t.send_errors <= kMaxErrorLines)
      owner_.report_error(id_, std::string("send failed: ") + std::strerror(err));
  }

  void on_readable() {
    const size_t room = size_ + 1;  // one spare byte: a longer echo shows as too long
    const size_t vlen = std::min<size_t>(depth_, kUdpBatch);
    char* area = owner_.rx_area_.get();
    uint64_t now = 0;
    for (;;) {
      int r;
      mmsghdr msgs[kUdpBatch];
      iovec iov[kUdpBatch];
      if (vlen == 1) {
        ssize_t n = ::recv(fd_.get(), area, room, MSG_DONTWAIT);
        r = n < 0 ? -1 : 1;
        msgs[0].msg_len = n < 0 ? 0 : unsigned(n);
      } else {
        for (size_t i = 0; i < vlen; ++i) {
          iov[i] = {area + i * room, room};
          msgs[i].msg_hdr = {};
          msgs[i].msg_hdr.msg_iov = &iov[i];
          msgs[i].msg_hdr.msg_iovlen = 1;
          msgs[i].msg_len = 0;
        }
        r = ::recvmmsg(fd_.get(), msgs, unsigned(vlen), MSG_DONTWAIT, nullptr);
      }
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (is_icmp_error(err)) {
          ++owner_.tally_.icmp_errors;
        } else if (err != EAGAIN && err != EWOULDBLOCK) {
          ++owner_.tally_.send_errors;
          if (owner_.tally_.send_errors <= kMaxErrorLines)
            owner_.report_error(id_, std::string("receive failed: ") + std::strerror(err));
        }
        break;
      }
      ++owner_.tally_.receive_calls;
      now = now_ns();
      for (int i = 0; i < r; ++i) on_echo(area + size_t(i) * room, msgs[i].msg_len, now);
      // Fewer than asked for: the socket is drained (level-triggered: more will wake us).
      if (size_t(r) < vlen || owner_.phase_ == Phase::done) break;
    }
    if (now) flush(now);
  }

  void on_echo(const char* data, size_t len, uint64_t now) {
    UdpTally& t = owner_.tally_;
    ++owner_.echoes_;
    if (len != size_) {
      mismatch("an echo of " + std::to_string(len) + (len > size_ ? "+" : "") +
               " bytes; every datagram sent has " + std::to_string(size_));
      return;
    }
    uint32_t id;
    uint64_t seq;
    std::memcpy(&id, data, 4);
    std::memcpy(&seq, data + 4, 8);
    if (id != id_) {
      mismatch("an echo carries client id " + std::to_string(id) + ", not this client's");
      return;
    }
    const uint32_t slot = uint32_t(seq % depth_);
    Slot& s = slots_[slot];
    if (seq > s.seq || (seq == s.seq && s.state != State::in_flight)) {
      mismatch("an echo carries sequence number " + std::to_string(seq) + ", never sent");
      return;
    }
    if (std::memcmp(data + kUdpHeaderBytes, owner_.pattern_for(id_, seq), size_ - kUdpHeaderBytes) != 0)
      mismatch("the echo of datagram " + std::to_string(seq) + " differs from what was sent");
    if (seq != s.seq) {
      ++t.late;  // already declared lost (or echoed twice)
      return;
    }
    if (owner_.phase_ == Phase::measuring) {
      owner_.latency_.record(now - s.sent_ns);
      ++t.datagrams;
    }
    if (owner_.phase_ != Phase::done) ++t.total_datagrams;
    s.seq += depth_;
    queue(slot);
  }

  void mismatch(const std::string& message) {
    ++owner_.tally_.mismatches;
    if (owner_.tally_.mismatches <= kMaxErrorLines) owner_.report_error(id_, message);
  }

  UdpLoadClient& owner_;
  uint32_t id_;
  size_t size_;
  uint32_t depth_;
  Fd fd_;
  IoWatcher watcher_;  // declared after fd_: stopped before the descriptor closes
  std::unique_ptr<Slot[]> slots_;
  std::vector<uint32_t> queued_;  // slots to send at the next flush
};

UdpLoadClient::UdpLoadClient(EventLoop& loop, const LoadOptions& options)
    : loop_(loop),
      options_(options),
      timeout_ns_(uint64_t(options.loss_timeout * 1e9)),
      rx_area_(new char[std::min<size_t>(options.pipeline, kUdpBatch) * (options.size + 1)]) {
  pattern_.resize(options_.size + kPatternPeriod);
  fill_pattern(pattern_);
  size_t ring = 1024;
  while (ring < 4 * options_.connections * options_.pipeline) ring *= 2;
  ring_.resize(ring);
}

UdpLoadClient::~UdpLoadClient() = default;

const char* UdpLoadClient::pattern_for(size_t client_id, uint64_t seq) const noexcept {
  return pattern_.data() + (client_id * kConnStride + seq) % kPatternPeriod;
}

double UdpLoadClient::measured_seconds() const noexcept {
  if (measure_start_ == TimePoint{}) return 0.0;
  TimePoint end = measure_end_ == TimePoint{} ? Clock::now() : measure_end_;
  return std::chrono::duration<double>(end - measure_start_).count();
}

double UdpLoadClient::loss_fraction() const noexcept {
  uint64_t all = tally_.datagrams + tally_.lost;
  return all ? double(tally_.lost) / double(all) : 0.0;
}

bool UdpLoadClient::open_all(std::string* why) {
  if (!ensure_descriptors(options_.connections, why, "--clients")) return false;
  clients_.reserve(options_.connections);
  for (size_t i = 0; i < options_.connections; ++i) {
    clients_.push_back(std::make_unique<Client>(*this, uint32_t(i)));
    if (auto ec = clients_.back()->open(options_.target)) {
      *why = "cannot open client socket " + std::to_string(i + 1) + " of " +
             std::to_string(options_.connections) + " to " + options_.target.to_string() +
             ": " + ec.message();
      return false;
    }
  }
  return true;
}

bool UdpLoadClient::run(std::string* why) {
  for (int sig : {SIGINT, SIGTERM}) {
    loop_.on_signal(sig, [this] {
      interrupted_ = true;
      finish();
    });
  }
  if (!open_all(why)) return false;
  // Losses are found within a tick of their deadline.
  auto tick = std::clamp<Duration>(
      std::chrono::duration_cast<Duration>(std::chrono::duration<double>(options_.loss_timeout / 8)),
      milliseconds(1), milliseconds(25));
  TimerId tick_timer = loop_.run_every(tick, [this] { on_tick(); });
  // A server that is not there: stop early rather than time out every datagram for the
  // whole duration.
  auto grace = std::max<Duration>(
      kMinNoEchoGrace,
      std::chrono::duration_cast<Duration>(std::chrono::duration<double>(5 * options_.loss_timeout)));
  TimerId grace_timer = loop_.run_after(grace, [this] {
    if (echoes_ == 0) {
      no_echo_ = true;
      finish();
    }
  });
  begin();
  loop_.run();
  loop_.cancel_timer(tick_timer);
  loop_.cancel_timer(grace_timer);
  for (auto& c : clients_) c->close();
  if (echoes_ == 0 && !interrupted_) {
    *why = "nothing was echoed by " + options_.target.to_string() + " (" +
           std::to_string(tally_.total_sent) + " datagrams sent";
    if (tally_.icmp_errors)
      *why += ", " + std::to_string(tally_.icmp_errors) +
              " ICMP errors such as port unreachable: is a UDP echo server listening there?)";
    else
      *why += ", no reply at all)";
    return false;
  }
  return true;
}

void UdpLoadClient::begin() {
  phase_ = options_.warmup > 0 ? Phase::warmup : Phase::measuring;
  if (phase_ == Phase::measuring) start_measuring();
  else
    loop_.run_after(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(options_.warmup)),
                    [this] { start_measuring(); });
  uint64_t now = now_ns();
  for (auto& c : clients_) c->start(now);
}

void UdpLoadClient::start_measuring() {
  if (phase_ == Phase::done) return;
  phase_ = Phase::measuring;
  latency_.clear();
  tally_.datagrams = tally_.sent = tally_.lost = 0;
  measure_start_ = Clock::now();
  loop_.run_after(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(options_.duration)),
                  [this] { finish(); });
}

void UdpLoadClient::finish() {
  if (phase_ == Phase::done) return;
  if (measure_start_ != TimePoint{}) measure_end_ = Clock::now();
  phase_ = Phase::done;
  loop_.stop();
}

void UdpLoadClient::watch(uint32_t client, uint64_t seq, uint64_t at_ns) {
  if (ring_count_ == ring_.size()) {
    // Full: double it, oldest first.
    std::vector<Deadline> bigger(ring_.size() * 2);
    for (size_t i = 0; i < ring_count_; ++i) bigger[i] = ring_[(ring_head_ + i) & (ring_.size() - 1)];
    ring_.swap(bigger);
    ring_head_ = 0;
  }
  ring_[(ring_head_ + ring_count_) & (ring_.size() - 1)] = {at_ns, seq, client};
  ++ring_count_;
}

void UdpLoadClient::mark_dirty(uint32_t client) {
  Client& c = *clients_[client];
  if (c.listed) return;
  c.listed = true;
  dirty_.push_back(client);
}

void UdpLoadClient::retry_later(uint32_t client, uint32_t slot) { retry_.emplace_back(client, slot); }

void UdpLoadClient::on_tick() {
  if (phase_ == Phase::done || phase_ == Phase::idle) return;
  const uint64_t now = now_ns();
  // Deadlines were queued in send order with one timeout, so the expired ones are in front.
  while (ring_count_ > 0) {
    const Deadline d = ring_[ring_head_];
    if (d.at_ns > now) break;
    ring_head_ = (ring_head_ + 1) & (ring_.size() - 1);
    --ring_count_;
    if (clients_[d.client]->expire(d.seq)) {
      ++tally_.total_lost;
      if (phase_ == Phase::measuring) ++tally_.lost;
      mark_dirty(d.client);
    }
  }
  for (auto [client, slot] : retry_) {
    clients_[client]->retry(slot);
    mark_dirty(client);
  }
  retry_.clear();
  // A flush that fails queues new retries: they wait for the next tick.
  std::vector<uint32_t> dirty;
  dirty.swap(dirty_);
  for (uint32_t c : dirty) clients_[c]->flush(now);
  dirty.clear();
  if (dirty_.empty()) dirty_.swap(dirty);  // keep the capacity
}

void UdpLoadClient::report_error(size_t client_id, const std::string& message) {
  if (errors_printed_ < kMaxErrorLines) {
    std::fprintf(stderr, "netloop-load: client %zu: %s\n", client_id + 1, message.c_str());
  } else if (errors_printed_ == kMaxErrorLines) {
    std::fprintf(stderr, "netloop-load: further errors are counted but not shown\n");
  }
  ++errors_printed_;
}

}  // namespace netloop::load
