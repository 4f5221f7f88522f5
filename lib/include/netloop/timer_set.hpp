// TimerSet: the timers one owner (a connection, a socket) started on its loop, cancelled
// together when the owner closes or goes away.
#pragma once

#include <functional>
#include <vector>

#include "netloop/event_loop.hpp"

namespace netloop {

class TimerSet {
 public:
  explicit TimerSet(EventLoop& loop) noexcept : loop_(loop) {}
  ~TimerSet() { cancel_all(); }
  TimerSet(const TimerSet&) = delete;
  TimerSet& operator=(const TimerSet&) = delete;

  // Runs `fn` after `delay`, then every `repeat` if repeat > 0.
  TimerId start(Duration delay, Duration repeat, std::function<void()> fn);
  bool cancel(TimerId id);  // false when it was not pending (fired, or cancelled)
  bool restart(TimerId id, Duration delay) { return loop_.restart_timer(id, delay); }
  void cancel_all() noexcept;

 private:
  EventLoop& loop_;
  std::vector<TimerId> ids_;  // pruned of fired one-shots on every start()
};

}  // namespace netloop
