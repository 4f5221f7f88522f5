// EventLoop: one thread's reactor. Dispatches poller events to IoWatchers, runs timers,
// posted functions and deferred work, and turns signals into callbacks.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "netloop/buffer.hpp"
#include "netloop/clock.hpp"
#include "netloop/counter.hpp"
#include "netloop/fd.hpp"
#include "netloop/poller.hpp"
#include "netloop/result.hpp"
#include "netloop/timer_queue.hpp"

namespace netloop {

class IoWatcher;
// I/O by completion (lib/src/completion.hpp, private to the library): io_uring's datagram
// channels, which UdpSocket asks for through its IoWatcher.
class CompletionIo;
class DatagramChannel;
struct DatagramChannelOptions;
namespace testing {
class MemoryLoop;
}

// Anything the loop may destroy for its owner once the current iteration is over
// (a connection closed inside its own callback, say).
class Disposable {
 public:
  virtual ~Disposable() = default;
};

class EventLoop {
 public:
  // Creates a loop on the named backend ("" = the default one).
  static Result<std::unique_ptr<EventLoop>> create(std::string_view backend = {},
                                                   std::string* why = nullptr);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs until stop(). The first thread to call run() is the loop thread for good (until
  // the loop is destroyed, which its owner may do from any thread once none runs it):
  // loop-only calls from any other thread fail an assertion (debug builds); use post().
  void run();
  // One iteration: waits at most `max_timeout_ms` (-1: until something happens).
  void run_once(int max_timeout_ms = -1);
  // Makes run() return after the current iteration (or at once, if it has not started).
  // Any thread.
  void stop();
  bool stopping() const noexcept { return stop_.load(std::memory_order_relaxed); }

  // Runs `fn` on the loop thread soon. Any thread; wakes the loop.
  void post(std::function<void()> fn);
  // Loop thread only: runs `fn` after the current dispatch batch, before the next wait.
  void defer(std::function<void()> fn);
  // Destroys `obj` once the current iteration's deferred work has run (or with the loop).
  void dispose_later(std::unique_ptr<Disposable> obj);

  // Timers (loop thread only). Time is the loop's cached clock.
  TimerId start_timer(Duration delay, Duration repeat, std::function<void()> fn);
  TimerId run_after(Duration delay, std::function<void()> fn) {
    return start_timer(delay, Duration::zero(), std::move(fn));
  }
  TimerId run_every(Duration interval, std::function<void()> fn) {
    return start_timer(interval, interval, std::move(fn));
  }
  bool cancel_timer(TimerId id) noexcept {
    assert_in_loop_thread();
    return timers_.cancel(id);
  }
  bool timer_pending(TimerId id) const noexcept { return timers_.pending(id); }
  bool restart_timer(TimerId id, Duration delay) noexcept {
    assert_in_loop_thread();
    return timers_.restart(id, now_ + delay);
  }
  TimePoint now() const noexcept { return now_; }  // cached once per iteration

  // SIGINT, SIGTERM, SIGHUP, SIGUSR1... delivered as callbacks on this loop. At most one
  // loop per process handles signals; others get EBUSY.
  Result<void> on_signal(int signo, std::function<void()> fn);

  std::string_view backend_name() const noexcept { return poller_->name(); }
  // The backend's completion side (io_uring), on the same ring and the same wait as its
  // readiness; null on the readiness backends (epoll, kqueue, poll, select).
  CompletionIo* completion() const noexcept;

  // This loop's connection counters: written by the loop, readable from any thread.
  LoopStats& stats() noexcept { return stats_; }
  const LoopStats& stats() const noexcept { return stats_; }

  bool in_loop_thread() const noexcept;
  // Inline, so that a release build (NDEBUG) pays not even the call.
  void assert_in_loop_thread() const noexcept {
    assert(in_loop_thread() && "netloop: loop-only call from another thread; use post()");
  }
  uint64_t iterations() const noexcept { return iterations_; }

 private:
  friend class IoWatcher;
  friend class StreamConnection;  // reads into scratch()
  friend class testing::MemoryLoop;  // drives a loop whose clock moves only when told

  // 64 KiB read area shared by every connection of this loop (muduo's readv trick):
  // a connection owns no input storage while it keeps up.
  Buffer& scratch() noexcept { return scratch_; }
  explicit EventLoop(std::unique_ptr<Poller> poller);
  std::error_code init();

  void queue_change(IoWatcher* w);
  void forget(IoWatcher* w) noexcept;  // drop pending changes and events of this batch
  void apply_changes();
  int compute_timeout(int max_timeout_ms) const;
  void dispatch(size_t n);
  void run_posted();
  void run_deferred();
  void on_wakeup();
  void wake_locked();
  void on_signal_pipe();

  std::unique_ptr<Poller> poller_;
  TimerQueue timers_;
  TimePoint now_;
  std::vector<PollEvent> events_;
  size_t batch_size_ = 0;  // events_ entries of the batch being dispatched
  std::vector<IoWatcher*> changes_;
  std::vector<std::function<void()>> deferred_;
  std::vector<std::unique_ptr<Disposable>> graveyard_;
  Buffer scratch_;
  LoopStats stats_;
  uint64_t iterations_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::thread::id> thread_id_;

  // Cross-thread wake-up: an eventfd (Linux) or a pipe.
  Fd wake_read_;
  Fd wake_write_;
  std::unique_ptr<IoWatcher> wake_watcher_;
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  std::vector<std::function<void()>> running_posted_;
  bool wake_pending_ = false;  // guarded by posted_mutex_

  // Signals: a self-pipe written by the async-signal handler.
  Fd signal_read_;
  std::unique_ptr<IoWatcher> signal_watcher_;
  std::vector<std::pair<int, std::function<void()>>> signal_handlers_;
};

}  // namespace netloop
