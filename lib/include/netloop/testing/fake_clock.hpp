// netloop::testing::FakeClock: a timer queue on a clock that moves only when told, for
// driving handlers' timers in tests.
#pragma once

#include <algorithm>

#include "netloop/clock.hpp"
#include "netloop/timer_queue.hpp"

namespace netloop::testing {

class FakeClock {
 public:
  TimePoint now() const noexcept { return now_; }
  TimerQueue& timers() noexcept { return timers_; }
  const TimerQueue& timers() const noexcept { return timers_; }

  // Moves the clock forward by `d`, running every timer that falls due on the way, each
  // at its own deadline and in deadline order (timers they arm run too if due).
  void advance(Duration d) {
    TimePoint target = now_ + d;
    for (;;) {
      auto next = timers_.next_deadline();
      if (!next || *next > target) break;
      now_ = std::max(now_, *next);
      timers_.run_due(now_);
    }
    now_ = target;
  }

 private:
  TimerQueue timers_;
  TimePoint now_{};
};

}  // namespace netloop::testing
