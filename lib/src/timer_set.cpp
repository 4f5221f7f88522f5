// TimerSet: bookkeeping of an owner's timers.
#include "netloop/timer_set.hpp"

#include <algorithm>

namespace netloop {

TimerId TimerSet::start(Duration delay, Duration repeat, std::function<void()> fn) {
  // Forget timers that already fired, so the list stays as short as the live ones.
  std::erase_if(ids_, [this](TimerId t) { return !loop_.timer_pending(t); });
  TimerId id = loop_.start_timer(delay, repeat, std::move(fn));
  ids_.push_back(id);
  return id;
}

bool TimerSet::cancel(TimerId id) {
  std::erase(ids_, id);
  return loop_.cancel_timer(id);
}

void TimerSet::cancel_all() noexcept {
  for (TimerId id : ids_) loop_.cancel_timer(id);
  ids_.clear();
}

}  // namespace netloop
