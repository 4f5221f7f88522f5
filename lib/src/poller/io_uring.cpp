// The io_uring backend (Linux, liburing): readiness through poll requests.
//
// The contract is level-triggered, and a multishot poll is edge-like (it completes on
// wake-ups, not while data sits unread), so each descriptor carries one one-shot poll,
// re-armed for the descriptors that fired at the top of the next wait(). The re-arms and
// the wait go to the kernel in one io_uring_submit_and_wait_timeout() call: one syscall
// per iteration, however many interests changed.
//
// One exception: io_uring always adds POLLRDHUP to a poll's events, so once the peer has
// half-closed, a write-only one-shot poll completes at once with RDHUP alone, however full
// the send buffer is. For that descriptor the write interest is waited for with a
// multishot poll instead (it completes on wake-ups, so the next one is write space), and
// it goes back to one-shot polls as soon as it is writable.
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>

#include <cstring>
#include <vector>

#include "poller/backends.hpp"

namespace netloop {
namespace {

constexpr unsigned kQueueDepth = 1024;
constexpr unsigned kCompletionDepth = 16384;
constexpr uint64_t kIgnoredTag = ~uint64_t(0);  // completions of removal requests

uint64_t tag(int fd, uint32_t gen) { return (uint64_t(gen) << 32) | uint32_t(fd); }

int init_ring(io_uring* ring, unsigned depth) {
  io_uring_params p;
  std::memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_CQSIZE;
  p.cq_entries = kCompletionDepth;
#ifdef IORING_SETUP_COOP_TASKRUN
  p.flags |= IORING_SETUP_COOP_TASKRUN;  // no interrupt of the loop thread per completion
#endif
  int r = io_uring_queue_init_params(depth, ring, &p);
  if (r == -EINVAL) {  // an older kernel without one of the flags
    std::memset(&p, 0, sizeof p);
    r = io_uring_queue_init_params(depth, ring, &p);
  }
  return r;
}

class UringPoller final : public Poller {
 public:
  UringPoller() = default;
  ~UringPoller() override {
    if (initialized_) io_uring_queue_exit(&ring_);
  }
  int init() {
    int r = init_ring(&ring_, kQueueDepth);
    initialized_ = r == 0;
    return r;
  }

  std::string_view name() const noexcept override { return "io_uring"; }

  std::error_code add(int fd, Interest interest, void* token) override {
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

  std::error_code modify(int fd, Interest interest, void* token) override {
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

  std::error_code remove(int fd) override {
    if (!registered(fd)) return make_error(ENOENT);
    Reg& r = regs_[fd];
    // Submitted at once: a pending poll holds a reference to the file, and the caller is
    // about to close() it expecting the socket to go.
    if (r.armed) cancel(fd, /*submit_now=*/true);
    r.active = false;
    r.armed = false;
    r.edge = false;
    ++r.gen;
    return {};
  }

  Result<size_t> wait(std::span<PollEvent> out, int timeout_ms) override {
    // Completions that report nothing (a removal, a cancelled poll, a poll that must be
    // armed again) end a wait early; keep waiting for the time left until something is
    // reported.
    backends::WaitDeadline deadline(timeout_ms);
    for (;;) {
      if (!arm_pending()) return make_error(EBUSY);
      int rc;
      io_uring_cqe* cqe = nullptr;
      if (timeout_ms == 0 || io_uring_cq_ready(&ring_) > 0) {
        rc = io_uring_submit(&ring_);
      } else if (timeout_ms < 0) {
        rc = io_uring_submit_and_wait(&ring_, 1);
      } else {
        __kernel_timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1'000'000LL};
        rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      }
      if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) return make_error(-rc);
      size_t count = reap(out);
      if (count > 0 || timeout_ms == 0) return count;
      timeout_ms = deadline.remaining_ms();
      if (timeout_ms == 0) return size_t{0};
    }
  }

 private:
  // Queues a poll for every descriptor waiting for one; false when the ring is full.
  bool arm_pending() {
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
      io_uring_sqe_set_data64(sqe, tag(fd, r.gen));
      r.armed = true;
    }
    to_arm_.clear();
    return true;
  }

  // Turns completions into events, at most out.size(); the rest wait for the next call.
  size_t reap(std::span<PollEvent> out) {
    io_uring_cqe* cqe = nullptr;
    size_t count = 0;
    while (count < out.size() && io_uring_peek_cqe(&ring_, &cqe) == 0) {
      uint64_t data = io_uring_cqe_get_data64(cqe);
      int res = cqe->res;
      bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;  // a multishot poll stays armed
      io_uring_cqe_seen(&ring_, cqe);
      if (data == kIgnoredTag) continue;
      int fd = int(uint32_t(data));
      uint32_t gen = uint32_t(data >> 32);
      if (fd < 0 || size_t(fd) >= regs_.size()) continue;
      Reg& r = regs_[fd];
      if (!r.active || r.gen != gen) continue;  // removed or changed since: stale
      if (!more) r.armed = false;
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
      if (ready) out[count++] = {r.token, ready};
    }
    return count;
  }

  struct Reg {
    void* token = nullptr;
    Interest interest = Interest::none;
    uint32_t gen = 0;
    bool active = false;
    bool armed = false;
    bool edge = false;  // waiting for write space with a multishot poll (peer half-closed)
  };

  bool registered(int fd) const {
    return fd >= 0 && size_t(fd) < regs_.size() && regs_[fd].active;
  }

  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {  // submission queue full: hand what is queued to the kernel first
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void cancel(int fd, bool submit_now) {
    io_uring_sqe* sqe = get_sqe();
    if (!sqe) return;
    io_uring_prep_poll_remove(sqe, tag(fd, regs_[fd].gen));
    io_uring_sqe_set_data64(sqe, kIgnoredTag);
    if (submit_now) io_uring_submit(&ring_);
  }

  io_uring ring_{};
  bool initialized_ = false;
  std::vector<Reg> regs_;    // by descriptor
  std::vector<int> to_arm_;  // descriptors whose poll must be (re)armed at the next wait
};

std::string probe() {
  static const std::string reason = [] {
    io_uring ring;
    int r = init_ring(&ring, 4);
    if (r < 0)
      return std::string("the kernel refused io_uring_setup (") + std::strerror(-r) +
             "); it may be disabled by kernel.io_uring_disabled or a seccomp filter";
    io_uring_queue_exit(&ring);
    return std::string();
  }();
  return reason;
}

}  // namespace

const backends::Backend backends::io_uring = {
    "io_uring",
    probe,
    []() -> Result<std::unique_ptr<Poller>> {
      auto p = std::make_unique<UringPoller>();
      if (int r = p->init(); r < 0) return make_error(-r);
      return std::unique_ptr<Poller>(std::move(p));
    },
};

}  // namespace netloop
