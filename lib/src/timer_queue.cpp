// TimerQueue: an indexed binary min-heap over reusable slots.
#include "netloop/timer_queue.hpp"

#include <algorithm>
#include <cassert>
#include <utility>

namespace netloop {
namespace {
// TimerId packs (generation << 32 | slot + 1) so that 0 never names a timer.
TimerId make_id(uint32_t slot, uint32_t gen) { return {(uint64_t(gen) << 32) | (uint64_t(slot) + 1)}; }
}  // namespace

TimerId TimerQueue::add(TimePoint when, Duration repeat, Callback fn) {
  uint32_t s;
  if (!free_.empty()) {
    s = free_.back();
    free_.pop_back();
  } else {
    s = uint32_t(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[s];
  slot.when = when;
  slot.repeat = repeat.count() > 0 ? repeat : Duration::zero();
  slot.fn = std::move(fn);
  slot.seq = next_seq_++;
  heap_.push_back(s);
  slot.heap_index = uint32_t(heap_.size() - 1);
  sift_up(heap_.size() - 1);
  return make_id(s, slot.generation);
}

TimerQueue::Slot* TimerQueue::lookup(TimerId id) noexcept {
  return const_cast<Slot*>(std::as_const(*this).lookup(id));
}

const TimerQueue::Slot* TimerQueue::lookup(TimerId id) const noexcept {
  uint64_t low = id.value & 0xffffffffu;
  if (low == 0 || low > slots_.size()) return nullptr;
  const Slot& slot = slots_[low - 1];
  if (slot.generation != uint32_t(id.value >> 32) || slot.heap_index == kNotQueued) return nullptr;
  return &slot;
}

bool TimerQueue::pending(TimerId id) const noexcept { return lookup(id) != nullptr; }

bool TimerQueue::cancel(TimerId id) noexcept {
  Slot* slot = lookup(id);
  if (!slot) return false;
  erase_at(slot->heap_index);
  free_slot(uint32_t(slot - slots_.data()));
  return true;
}

bool TimerQueue::restart(TimerId id, TimePoint when) noexcept {
  Slot* slot = lookup(id);
  if (!slot) return false;
  uint32_t s = uint32_t(slot - slots_.data());
  slot->when = when;
  slot->seq = next_seq_++;
  sift_up(slots_[s].heap_index);
  sift_down(slots_[s].heap_index);
  return true;
}

std::optional<TimePoint> TimerQueue::next_deadline() const noexcept {
  if (heap_.empty()) return std::nullopt;
  return slots_[heap_.front()].when;
}

size_t TimerQueue::run_due(TimePoint now) {
  size_t ran = 0;
  // Only timers armed before this call run in it: one that re-arms itself (or another)
  // for `now` or earlier waits for the next call, so I/O is never starved.
  const uint64_t limit = next_seq_;
  while (!heap_.empty()) {
    uint32_t s = heap_.front();
    if (slots_[s].when > now || slots_[s].seq >= limit) break;
    ++ran;
    if (slots_[s].repeat > Duration::zero()) {
      // Re-arm before running, so the callback may cancel or restart itself; the
      // callback is borrowed for the call and handed back if the timer still exists.
      uint32_t gen = slots_[s].generation;
      // A late timer keeps its period from now on rather than firing twice back to back.
      TimePoint next = slots_[s].when + slots_[s].repeat;
      slots_[s].when = next > now ? next : now + slots_[s].repeat;
      slots_[s].seq = next_seq_++;
      sift_down(0);
      Callback fn = std::move(slots_[s].fn);
      fn();
      if (slots_[s].generation == gen && slots_[s].heap_index != kNotQueued)
        slots_[s].fn = std::move(fn);
    } else {
      erase_at(0);
      Callback fn = std::move(slots_[s].fn);
      free_slot(s);
      fn();
    }
  }
  return ran;
}

bool TimerQueue::before(uint32_t a, uint32_t b) const noexcept {
  const Slot& x = slots_[a];
  const Slot& y = slots_[b];
  return x.when < y.when || (x.when == y.when && x.seq < y.seq);
}

void TimerQueue::place(size_t i, uint32_t slot) noexcept {
  heap_[i] = slot;
  slots_[slot].heap_index = uint32_t(i);
}

void TimerQueue::sift_up(size_t i) noexcept {
  uint32_t s = heap_[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(s, heap_[parent])) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, s);
}

void TimerQueue::sift_down(size_t i) noexcept {
  size_t n = heap_.size();
  uint32_t s = heap_[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], s)) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, s);
}

void TimerQueue::erase_at(size_t i) noexcept {
  assert(i < heap_.size());
  uint32_t removed = heap_[i];
  uint32_t last = heap_.back();
  heap_.pop_back();
  slots_[removed].heap_index = kNotQueued;
  if (i < heap_.size()) {
    place(i, last);
    sift_up(i);
    sift_down(slots_[last].heap_index);
  }
}

void TimerQueue::free_slot(uint32_t s) noexcept {
  Slot& slot = slots_[s];
  slot.heap_index = kNotQueued;
  slot.fn = nullptr;
  ++slot.generation;
  if (slot.generation == 0) slot.generation = 1;
  free_.push_back(s);
}

}  // namespace netloop
