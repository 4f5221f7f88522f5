// TimerQueue: one-shot and repeating timers in an indexed binary heap.
//
// add, cancel and restart are O(log n); nothing scans all timers. Time is passed in, so
// the same queue runs on a real clock (EventLoop) or a fake one (tests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "netloop/clock.hpp"

namespace netloop {

// Names one timer; stays safe to cancel after the timer ran or was cancelled (a stale
// id is recognised by its generation and ignored). A default id names no timer.
struct TimerId {
  uint64_t value = 0;
  explicit operator bool() const noexcept { return value != 0; }
  friend bool operator==(TimerId, TimerId) = default;
};

class TimerQueue {
 public:
  using Callback = std::function<void()>;

  // Runs `fn` at `when`, then every `repeat` if repeat > 0.
  TimerId add(TimePoint when, Duration repeat, Callback fn);
  // Returns false if the timer had already fired (one-shot) or was cancelled.
  bool cancel(TimerId id) noexcept;
  // Moves a pending timer to a new deadline without touching its callback.
  bool restart(TimerId id, TimePoint when) noexcept;
  bool pending(TimerId id) const noexcept;

  // Runs every timer due at `now` (in deadline order); callbacks may add or cancel
  // timers, including themselves. Returns how many ran.
  size_t run_due(TimePoint now);
  std::optional<TimePoint> next_deadline() const noexcept;
  size_t size() const noexcept { return heap_.size(); }
  bool empty() const noexcept { return heap_.empty(); }

 private:
  struct Slot {
    TimePoint when{};
    Duration repeat{};
    Callback fn;
    uint64_t seq = 0;        // ties broken by insertion order
    uint32_t generation = 1;
    uint32_t heap_index = kNotQueued;
  };
  static constexpr uint32_t kNotQueued = UINT32_MAX;

  bool before(uint32_t a, uint32_t b) const noexcept;
  void sift_up(size_t i) noexcept;
  void sift_down(size_t i) noexcept;
  void place(size_t i, uint32_t slot) noexcept;
  void erase_at(size_t i) noexcept;
  Slot* lookup(TimerId id) noexcept;
  const Slot* lookup(TimerId id) const noexcept;
  void free_slot(uint32_t slot) noexcept;

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> heap_;  // slot indices, min-heap on (when, seq)
  uint64_t next_seq_ = 0;
};

}  // namespace netloop
