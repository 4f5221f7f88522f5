// EventLoop: the iteration (apply changes, wait, dispatch, timers, deferred work),
// cross-thread posting and the wake-up descriptor.
#include "netloop/event_loop.hpp"
#include "netloop/io_watcher.hpp"

#include <cassert>
#include <cerrno>
#include <fcntl.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "completion.hpp"
#include "netloop/log.hpp"
#include "signal_pipe.hpp"

namespace netloop {
namespace {
constexpr size_t kMaxEventsPerWait = 512;
constexpr size_t kScratchBytes = 64 * 1024;
}  // namespace

Result<std::unique_ptr<EventLoop>> EventLoop::create(std::string_view backend, std::string* why) {
  auto poller = create_poller(backend, why);
  if (!poller) return poller.error();
  std::unique_ptr<EventLoop> loop(new EventLoop(std::move(*poller)));
  if (auto ec = loop->init()) {
    if (why) *why = "cannot create the loop's wake-up descriptor: " + ec.message();
    return ec;
  }
  return loop;
}

EventLoop::EventLoop(std::unique_ptr<Poller> poller)
    : poller_(std::move(poller)), now_(Clock::now()), events_(kMaxEventsPerWait),
      scratch_(kScratchBytes) {}

std::error_code EventLoop::init() {
#ifdef __linux__
  int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) return last_error();
  wake_read_.reset(efd);
#else
  int p[2];
  if (::pipe(p) < 0) return last_error();
  wake_read_.reset(p[0]);
  wake_write_.reset(p[1]);
  if (!set_nonblocking_cloexec(p[0]) || !set_nonblocking_cloexec(p[1])) return last_error();
#endif
  wake_watcher_ = std::make_unique<IoWatcher>(*this, [this](uint32_t) { on_wakeup(); });
  return wake_watcher_->start(wake_read_.get(), Interest::read).error();
}

EventLoop::~EventLoop() {
  // Destroying the loop is its owner's business, from any thread once none runs it: what
  // it destroys below (watchers, objects awaiting disposal) may touch it.
  thread_id_.store(std::thread::id(), std::memory_order_relaxed);
  // Whatever is still deferred or posted runs no more; objects awaiting disposal go now,
  // while the loop they may refer to still exists.
  while (!graveyard_.empty()) {
    std::vector<std::unique_ptr<Disposable>> dead;
    dead.swap(graveyard_);
  }
  deferred_.clear();
  signal_watcher_.reset();
  wake_watcher_.reset();
  if (signal_read_) release_signal_pipe(this);
}

bool EventLoop::in_loop_thread() const noexcept {
  // Before the first run(), whoever holds the loop may drive it (set-up, or run_once()
  // from a test); from then on only the thread that ran it.
  auto owner = thread_id_.load(std::memory_order_relaxed);
  return owner == std::thread::id() || owner == std::this_thread::get_id();
}

void EventLoop::run() {
  auto self = std::this_thread::get_id();
  [[maybe_unused]] auto bound = thread_id_.load(std::memory_order_relaxed);
  assert((bound == std::thread::id() || bound == self) &&
         "netloop: a loop runs on the thread that first ran it");
  thread_id_.store(self, std::memory_order_relaxed);
  // A stop() that came before run() counts: run() then returns at once.
  while (!stop_.load(std::memory_order_relaxed)) run_once(-1);
  // A stop() or post() from another thread may still be finishing its wake-up write: wait
  // for it, so that whoever destroys the loop once run() returns does not pull it away.
  { std::lock_guard lock(posted_mutex_); }
  stop_.store(false, std::memory_order_relaxed);
  // The loop stays bound to this thread (muduo's rule): loop-only calls from any other
  // thread keep failing the assertion, until the loop is destroyed. Tear-down belongs on
  // this thread too (Server closes each loop's listeners and sockets there).
}

void EventLoop::stop() {
  // Always wake it: deciding from another thread whether the loop is inside wait() would
  // race with run() starting. One eventfd write per stop() is nothing. All under the lock
  // (see the end of run()).
  std::lock_guard lock(posted_mutex_);
  stop_.store(true);
  wake_locked();
}

void EventLoop::run_once(int max_timeout_ms) {
  assert_in_loop_thread();
  ++iterations_;
  if (!changes_.empty()) apply_changes();
  int timeout = compute_timeout(max_timeout_ms);
  auto n = poller_->wait(events_, timeout);
  now_ = Clock::now();
  if (!n) {
    const int err = n.error().value();
    if (err == EBADF || err == EINVAL || err == EEXIST || err == EBADFD || err == EFAULT) {
      // Waiting again would fail the same way (an io_uring loop moved to another thread
      // says EEXIST): stop, rather than spin on the error.
      log_error("{} poller cannot wait ({}): stopping the loop", poller_->name(),
                n.error().message());
      stop();
    } else {
      log_error("{} poller wait failed: {}", poller_->name(), n.error().message());
    }
  } else {
    dispatch(*n);
  }
  if (!timers_.empty()) timers_.run_due(now_);
  if (!deferred_.empty() || !graveyard_.empty()) run_deferred();
}

int EventLoop::compute_timeout(int max_timeout_ms) const {
  if (!deferred_.empty() || !graveyard_.empty() || stop_.load(std::memory_order_relaxed)) return 0;
  int timeout = max_timeout_ms;
  if (timers_.empty()) return timeout;
  if (auto next = timers_.next_deadline()) {
    auto wait = *next - Clock::now();
    // Round up: waking a little early would spin until the deadline.
    auto ms = std::chrono::ceil<milliseconds>(wait).count();
    int t = ms <= 0 ? 0 : ms > 3'600'000 ? 3'600'000 : int(ms);
    if (timeout < 0 || t < timeout) timeout = t;
  }
  return timeout;
}

void EventLoop::dispatch(size_t n) {
  batch_size_ = n;
  for (size_t i = 0; i < batch_size_; ++i) {
    auto* w = static_cast<IoWatcher*>(events_[i].token);
    if (!w) continue;  // stopped earlier in this batch
    // Re-check against what the watcher wants now: a callback earlier in this batch may
    // have dropped an interest (ae's re-check).
    uint32_t r = events_[i].ready;
    uint32_t mask = ready::hangup | ready::error;
    if (has(w->wanted_, Interest::read)) mask |= ready::readable;
    if (has(w->wanted_, Interest::write)) mask |= ready::writable;
    r &= mask;
    if (w->wanted_ == Interest::none || r == 0) continue;
    w->cb_(r);
  }
  batch_size_ = 0;
}

void EventLoop::queue_change(IoWatcher* w) {
  if (w->queued_) return;
  w->queued_ = true;
  changes_.push_back(w);
}

void EventLoop::forget(IoWatcher* w) noexcept {
  if (w->queued_) {
    for (auto& p : changes_)
      if (p == w) p = nullptr;
    w->queued_ = false;
  }
  for (size_t i = 0; i < batch_size_; ++i)
    if (events_[i].token == w) events_[i].token = nullptr;
}

void EventLoop::apply_changes() {
  // Index loop: an error callback may queue further changes.
  for (size_t i = 0; i < changes_.size(); ++i) {
    IoWatcher* w = changes_[i];
    if (!w) continue;
    w->queued_ = false;
    if (w->wanted_ == w->registered_) continue;
    std::error_code ec;
    if (w->wanted_ == Interest::none)
      ec = poller_->remove(w->fd_).error();
    else if (w->registered_ == Interest::none)
      ec = poller_->add(w->fd_, w->wanted_, w).error();
    else
      ec = poller_->modify(w->fd_, w->wanted_, w).error();
    if (!ec) {
      w->registered_ = w->wanted_;
      continue;
    }
    log_warn("{} poller: cannot change interest of fd {}: {}", poller_->name(), w->fd_, ec.message());
    // Leave no half-applied registration behind (a stale write interest would be
    // reported, and masked, on every wait), then tell the owner.
    if (w->registered_ != Interest::none) poller_->remove(w->fd_);
    w->registered_ = w->wanted_ = Interest::none;
    w->error_ = ec;
    w->cb_(ready::error);
  }
  changes_.clear();
}

void EventLoop::post(std::function<void()> fn) {
  std::lock_guard lock(posted_mutex_);
  posted_.push_back(std::move(fn));
  wake_locked();
}

// posted_mutex_ held. The write happens under the lock too, so that once the loop thread
// has taken the lock after its last iteration, no other thread is still touching it.
void EventLoop::wake_locked() {
  if (wake_pending_) return;
  wake_pending_ = true;
  uint64_t one = 1;
  int wfd = wake_write_ ? wake_write_.get() : wake_read_.get();
  // EAGAIN means a wake-up is already pending: fine.
  [[maybe_unused]] auto r = ::write(wfd, &one, wake_write_ ? 1 : sizeof one);
}

void EventLoop::on_wakeup() {
  uint64_t buf[16];
  if (wake_write_) {
    while (::read(wake_read_.get(), buf, sizeof buf) > 0) {  // a pipe: drain it
    }
  } else {
    [[maybe_unused]] auto r = ::read(wake_read_.get(), buf, sizeof(uint64_t));  // eventfd: one read resets it
  }
  run_posted();
}

void EventLoop::run_posted() {
  {
    std::lock_guard lock(posted_mutex_);
    running_posted_.swap(posted_);
    wake_pending_ = false;
  }
  for (auto& fn : running_posted_) fn();
  running_posted_.clear();
}

void EventLoop::defer(std::function<void()> fn) {
  assert_in_loop_thread();
  deferred_.push_back(std::move(fn));
}

void EventLoop::dispose_later(std::unique_ptr<Disposable> obj) {
  assert_in_loop_thread();
  graveyard_.push_back(std::move(obj));
}

void EventLoop::run_deferred() {
  // Deferred work may defer more; it runs in the next round (timeout 0), so a handler
  // that keeps deferring cannot starve I/O.
  if (!deferred_.empty()) {
    std::vector<std::function<void()>> batch;
    batch.swap(deferred_);
    for (auto& fn : batch) fn();
    if (deferred_.empty()) {
      batch.clear();
      deferred_.swap(batch);  // keep the capacity: no allocation per iteration
    }
  }
  // Deferred work queued just now may name an object awaiting disposal: such objects
  // live until no deferred work is left that could still reach them.
  if (deferred_.empty() && !graveyard_.empty()) {
    // Swapped out first: a destructor may dispose of more (a handler owning a listener).
    std::vector<std::unique_ptr<Disposable>> dead;
    dead.swap(graveyard_);
    dead.clear();
    if (graveyard_.empty()) graveyard_.swap(dead);  // keep the capacity
  }
}

TimerId EventLoop::start_timer(Duration delay, Duration repeat, std::function<void()> fn) {
  assert_in_loop_thread();
  return timers_.add(now_ + delay, repeat, std::move(fn));
}

CompletionIo* EventLoop::completion() const noexcept {
  // A backend with a completion side implements it on its poller object (one ring, one
  // wait). Asked once per socket, so the cast is not worth a member.
  return dynamic_cast<CompletionIo*>(poller_.get());
}

}  // namespace netloop
