// UdpLoadClient: the send/match/time cycle of each client socket, loss detection by
// timeout, and the phases of a run.
#include "udp_client.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "netloop/io_watcher.hpp"
#include "os_support.hpp"
#include "pattern.hpp"

namespace netloop::load {

// Datagram layout: client id (4 bytes) and sequence number (8 bytes), in host order (the
// echo comes back to the host that wrote them), then size - 12 payload bytes: the pattern
// window of (client id, sequence number). Slot `i` of a client (one of its K datagrams in
// flight) uses the sequence numbers i, i + K, i + 2K...: the slot of an echo is its
// sequence number mod K, and an echo is current only if it carries its slot's sequence
// number while that datagram is in flight.

namespace {

constexpr size_t kUdpBatch = 64;  // datagrams per recvmmsg/sendmmsg call
constexpr size_t kMaxErrorLines = 10;
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
  pattern_ = make_pattern(options_.size);
  size_t ring = 1024;
  while (ring < 4 * options_.connections * options_.pipeline) ring *= 2;
  ring_.resize(ring);
}

UdpLoadClient::~UdpLoadClient() = default;

const char* UdpLoadClient::pattern_for(size_t client_id, uint64_t seq) const noexcept {
  return pattern_.data() + pattern_offset(client_id, seq);
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
