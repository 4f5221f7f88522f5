// ConnectionLimit: a budget of open connections shared by listeners (and their loops).
#pragma once

#include <atomic>
#include <cstddef>

namespace netloop {

// A budget of simultaneous connections, shared by listeners on several loops.
class ConnectionLimit {
 public:
  explicit ConnectionLimit(size_t max) noexcept : max_(max) {}
  bool try_acquire() noexcept {
    if (open_.fetch_add(1, std::memory_order_relaxed) < max_) return true;
    open_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void release() noexcept { open_.fetch_sub(1, std::memory_order_relaxed); }
  size_t open() const noexcept { return open_.load(std::memory_order_relaxed); }
  size_t max() const noexcept { return max_; }

 private:
  std::atomic<size_t> open_{0};
  size_t max_;
};

}  // namespace netloop
