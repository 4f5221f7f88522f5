// The io_uring backend (Linux, liburing): the ring, and readiness through poll requests on
// it; the datagram channels that share the ring are io_uring_channel.cpp's.
//
// The contract is level-triggered, and a multishot poll is edge-like (it completes on
// wake-ups, not while data sits unread), so each descriptor carries one one-shot poll,
// re-armed for the descriptors that fired at the top of the next wait(). The re-arms, the
// channels' sends and the wait go to the kernel in one io_uring_enter: one system call
// per iteration, however many interests changed and replies were queued.
//
// One exception: io_uring always adds POLLRDHUP to a poll's events, so once the peer has
// half-closed, a write-only one-shot poll completes at once with RDHUP alone, however full
// the send buffer is. For that descriptor the write interest is waited for with a
// multishot poll instead (it completes on wake-ups, so the next one is write space), and
// it goes back to one-shot polls as soon as it is writable.
//
// The ring runs its deferred work only when its thread waits (DEFER_TASKRUN, kernel 6.1+):
// completions are produced in the one system call that collects them, and nothing
// interrupts the thread meanwhile. Such a ring accepts submissions from one thread only,
// so it is created disabled and enabled by the first wait(), on the loop's thread; later
// submissions from another thread (a tear-down after the loop thread has gone) fail, and
// what they would have released goes with the ring. Older kernels get COOP_TASKRUN.
#include "poller/io_uring.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "netloop/log.hpp"

namespace netloop {
namespace uring {
namespace {

constexpr unsigned kQueueDepth = 1024;
constexpr unsigned kCompletionDepth = 16384;

uint64_t poll_tag(int fd, uint32_t gen) { return (uint64_t(gen & 0x7fffffff) << 32) | uint32_t(fd); }

// Returns 0 or -errno; `*disabled` says the ring was created disabled (single issuer).
int init_ring(io_uring* ring, unsigned depth, bool* disabled) {
  const unsigned modes[] = {
#if defined(IORING_SETUP_DEFER_TASKRUN) && defined(IORING_SETUP_R_DISABLED)
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
#endif
#ifdef IORING_SETUP_COOP_TASKRUN
      IORING_SETUP_COOP_TASKRUN,  // no interrupt of the loop thread per completion
#endif
      0,
  };
  int r = -EINVAL;
  for (unsigned mode : modes) {
    io_uring_params p;
    std::memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | mode;
    p.cq_entries = kCompletionDepth;
    r = io_uring_queue_init_params(depth, ring, &p);
    if (r != -EINVAL) {  // -EINVAL: an older kernel without one of the flags
      if (disabled) *disabled = r == 0 && (mode & IORING_SETUP_R_DISABLED) != 0;
      return r;
    }
  }
  return r;
}

std::string probe() {
  static const std::string reason = [] {
    io_uring ring;
    int r = init_ring(&ring, 4, nullptr);
    if (r < 0)
      return std::string("the kernel refused io_uring_setup (") + std::strerror(-r) +
             "); it may be disabled by kernel.io_uring_disabled or a seccomp filter";
    io_uring_queue_exit(&ring);
    return std::string();
  }();
  return reason;
}

}  // namespace

UringPoller::~UringPoller() {
  // Channels and watchers are gone by now; the kernel lets go of everything with the ring,
  // and only then may the memory it could still write to go (with channels_, after this).
  if (initialized_) io_uring_queue_exit(&ring_);
}

int UringPoller::init() {
  bool disabled = false;
  int r = init_ring(&ring_, kQueueDepth, &disabled);
  initialized_ = r == 0;
  enabled_ = !disabled;
  return r;
}

bool UringPoller::enable() {
  if (enabled_) return true;
  if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0)
    return false;
  enabled_ = true;
  return true;
}

Result<void> UringPoller::add(int fd, Interest interest, void* token) {
  if (fd < 0) return make_error(EBADF);
  if (interest == Interest::none) return make_error(EINVAL);
  if (size_t(fd) >= regs_.size()) regs_.resize(size_t(fd) + 1);
  Reg& r = regs_[fd];
  if (r.active) return make_error(EEXIST);
  if (::fcntl(fd, F_GETFD) < 0) return make_error(EBADF);  // the poll would fail later
  r.active = true;
  r.armed = false;
  r.interest = interest;
  r.token = token;
  ++r.gen;
  to_arm_.push_back(fd);
  return {};
}

Result<void> UringPoller::modify(int fd, Interest interest, void* token) {
  if (interest == Interest::none) return make_error(EINVAL);
  if (!registered(fd)) return make_error(ENOENT);
  Reg& r = regs_[fd];
  r.token = token;  // completions report the current token
  if (r.interest == interest) return {};
  if (r.armed) cancel(fd, /*submit_now=*/false);
  r.armed = false;
  r.edge = false;
  r.interest = interest;
  ++r.gen;
  to_arm_.push_back(fd);
  return {};
}

Result<void> UringPoller::remove(int fd) {
  if (!registered(fd)) return make_error(ENOENT);
  Reg& r = regs_[fd];
  // Submitted at once: a pending poll holds a reference to the file, and the caller is
  // about to close() it expecting the socket to go.
  if (r.armed) cancel(fd, /*submit_now=*/true);
  r.active = false;
  r.armed = false;
  r.edge = false;
  ++r.gen;
  // Readiness of this descriptor taken early (by a channel's flush) is stale now.
  for (PollEvent& e : pending_)
    if (e.token == r.token) e.ready = 0;
  return {};
}

Result<size_t> UringPoller::wait(std::span<PollEvent> out, int timeout_ms) {
  if (!enable()) return make_error(errno);
  // Completions that report nothing (a removal, a cancelled poll, a poll that must be
  // armed again, a send) end a wait early; keep waiting for the time left until something
  // is reported.
  backends::WaitDeadline deadline(timeout_ms);
  for (;;) {
    if (!arm_pending()) return make_error(EBUSY);
    // Work already in hand (readiness taken early, channels with completions left over)
    // is reported without sleeping.
    const bool poll_only = timeout_ms == 0 || !pending_.empty() || channels_.waiting() > 0 ||
                           io_uring_cq_ready(&ring_) > 0;
    // Sends queued since the last submission complete within this system call (they carry
    // MSG_DONTWAIT), and their completions end the wait at once: their results are
    // counted now, not whenever the next datagram happens to wake the loop. (Sends that
    // post no completion on success, with the wait going on past them, save a system call
    // per iteration but measured no faster here, and leave an idle socket's counters
    // behind its last replies; a timeout to bound that lag costs more than the call saves:
    // two timer reprogrammings per wait, VM exits under KVM.)
    int rc;
    if (poll_only) {
      rc = io_uring_submit_and_get_events(&ring_);
    } else if (timeout_ms < 0) {
      rc = io_uring_submit_and_wait(&ring_, 1);
    } else {
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1'000'000LL};
      rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
    if (rc == -EEXIST && !warned_thread_) {
      warned_thread_ = true;
      log_error("io_uring: this loop's ring takes submissions only from the thread that first "
                "waited on it; run the loop on one thread");
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) return make_error(-rc);
    size_t count = reap(out);
    if (count > 0 || poll_only) return count;
    timeout_ms = deadline.remaining_ms();
    if (timeout_ms == 0) return size_t{0};
  }
}

int UringPoller::submit() {
  if (!enabled_) return -EBADFD;  // nothing is armed before the first wait anyway
  return io_uring_submit_and_get_events(&ring_);
}

// Queues a poll for every descriptor waiting for one, and the receives of channels that
// found no room; false when the ring is full.
bool UringPoller::arm_pending() {
  for (int fd : to_arm_) {
    Reg& r = regs_[fd];
    if (!r.active || r.armed) continue;
    io_uring_sqe* sqe = get_sqe();
    if (!sqe) return false;
    unsigned mask = 0;
    if (has(r.interest, Interest::read)) mask |= POLLIN;
    if (has(r.interest, Interest::write)) mask |= POLLOUT;
    if (r.edge)
      io_uring_prep_poll_multishot(sqe, fd, mask);
    else
      io_uring_prep_poll_add(sqe, fd, mask);
    io_uring_sqe_set_data64(sqe, poll_tag(fd, r.gen));
    r.armed = true;
  }
  to_arm_.clear();
  channels_.arm_pending();
  return true;
}

size_t UringPoller::reap(std::span<PollEvent> out) {
  // Readiness taken outside a wait comes first (it happened first).
  size_t count = 0;
  size_t used = 0;
  for (; used < pending_.size() && count < out.size(); ++used)
    if (pending_[used].ready) out[count++] = pending_[used];
  pending_.erase(pending_.begin(), pending_.begin() + ptrdiff_t(used));
  const size_t first = count;
  io_uring_cqe* cqe = nullptr;
  while (count + channels_.waiting() < out.size() && io_uring_peek_cqe(&ring_, &cqe) == 0) {
    io_uring_cqe c = *cqe;
    io_uring_cqe_seen(&ring_, cqe);
    take(c, out, count);
  }
  // Then the channels, ahead of this wait's readiness: what they hold (send results,
  // datagrams) happened before it, and a function posted to the loop, say, whose wake-up
  // came with them should see their counts.
  const size_t ready_end = count;
  count = channels_.report(out, count);
  std::rotate(out.begin() + ptrdiff_t(first), out.begin() + ptrdiff_t(ready_end),
              out.begin() + ptrdiff_t(count));
  return count;
}

void UringPoller::take(const io_uring_cqe& cqe, std::span<PollEvent> out, size_t& count) {
  const uint64_t data = io_uring_cqe_get_data64(&cqe);
  if (data == kIgnoredTag) return;
  if (data & kChannelBit) {
    channels_.take(cqe);
    return;
  }
  const int fd = int(uint32_t(data));
  const uint32_t gen = uint32_t(data >> 32);
  if (fd < 0 || size_t(fd) >= regs_.size()) return;
  Reg& r = regs_[fd];
  if (!r.active || (r.gen & 0x7fffffff) != gen) return;  // removed or changed since: stale
  const int res = cqe.res;
  if (!(cqe.flags & IORING_CQE_F_MORE)) r.armed = false;  // a multishot poll stays armed
  uint32_t ready = 0;
  if (res == -ECANCELED) {
    ready = 0;
  } else if (res < 0) {
    ready = ready::error;
  } else {
    if (res & POLLIN) ready |= ready::readable;
    if (res & POLLOUT) ready |= ready::writable;
    if (res & POLLHUP) ready |= ready::hangup;
    if (res & (POLLERR | POLLNVAL)) ready |= ready::error;
    if (!ready && (res & POLLRDHUP) && !r.edge) {
      // A write-only poll on a half-closed socket: see the top of the file.
      r.edge = true;
    }
  }
  if (r.edge && (ready & ready::writable)) {
    // Write space came: back to level-triggered one-shot polls.
    if (r.armed) cancel(fd, /*submit_now=*/false);
    r.armed = false;
    r.edge = false;
    ++r.gen;
  }
  if (!r.armed) to_arm_.push_back(fd);  // level-triggered: ask again at the next wait
  if (!ready) return;
  if (count < out.size())
    out[count++] = {r.token, ready};
  else
    pending_.push_back({r.token, ready});
}

void UringPoller::submit_and_reap() {
  if (submit() < 0) return;
  io_uring_cqe* cqe = nullptr;
  size_t none = 0;
  while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
    io_uring_cqe c = *cqe;
    io_uring_cqe_seen(&ring_, cqe);
    take(c, {}, none);  // readiness goes to pending_
  }
}

void UringPoller::forget_queued(uint64_t tag, uint64_t mask) {
  io_uring_sq& sq = ring_.sq;
  for (unsigned i = *sq.khead; i != sq.sqe_tail; ++i) {
    io_uring_sqe* sqe = &sq.sqes[i & sq.ring_mask];
    if ((sqe->user_data & mask) != (tag & mask)) continue;
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, kIgnoredTag);
  }
}

int UringPoller::register_buffer_ring(const io_uring_buf_reg& reg) {
  io_uring_buf_reg copy = reg;  // liburing takes it non-const
  return io_uring_register_buf_ring(&ring_, &copy, 0);
}

bool UringPoller::unregister_buffer_ring(uint16_t group) {
  return io_uring_unregister_buf_ring(&ring_, group) == 0;
}

io_uring_sqe* UringPoller::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) {  // submission queue full: hand what is queued to the kernel first
    submit();
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void UringPoller::cancel(int fd, bool submit_now) {
  io_uring_sqe* sqe = get_sqe();
  if (!sqe) return;
  io_uring_prep_poll_remove(sqe, poll_tag(fd, regs_[fd].gen));
  io_uring_sqe_set_data64(sqe, kIgnoredTag);
  if (submit_now) submit();
}

}  // namespace uring

const backends::Backend backends::io_uring = {
    "io_uring",
    uring::probe,
    []() -> Result<std::unique_ptr<Poller>> {
      auto p = std::make_unique<uring::UringPoller>();
      if (int r = p->init(); r < 0) return make_error(-r);
      return std::unique_ptr<Poller>(std::move(p));
    },
};

}  // namespace netloop
