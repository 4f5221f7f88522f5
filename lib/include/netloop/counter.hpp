// Counter: a statistic written by one thread (its loop's) and read by any, without locks:
// a relaxed atomic load and store, which on x86 and ARM compile to plain moves. Metrics
// scrapes and SIGUSR1 summaries read them from another thread while the loop runs.
#pragma once

#include <atomic>
#include <cstdint>

namespace netloop {

class Counter {
 public:
  Counter() noexcept = default;
  Counter(const Counter& other) noexcept : v_(other.get()) {}
  Counter& operator=(const Counter& other) noexcept {
    v_.store(other.get(), std::memory_order_relaxed);
    return *this;
  }

  // Owner thread only (a single writer: no read-modify-write needed).
  void add(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  Counter& operator++() noexcept {
    add(1);
    return *this;
  }
  void operator++(int) noexcept { add(1); }
  Counter& operator+=(uint64_t n) noexcept {
    add(n);
    return *this;
  }
  // Gauges go down too (open connections).
  void sub(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }

  // Any thread.
  uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }
  operator uint64_t() const noexcept { return get(); }  // NOLINT: reads like the number

 private:
  std::atomic<uint64_t> v_{0};
};

// What one loop's connections did, for metrics: written by the loop, read by anyone.
struct LoopStats {
  Counter tcp_bytes_in;
  Counter tcp_bytes_out;
  Counter connections_open;  // a gauge
  // How connections ended (CloseReason), the "errors by kind" of the metrics.
  Counter closed_local;
  Counter closed_peer;
  Counter closed_aborted;
  Counter closed_reset;
  Counter closed_error;
  Counter closed_shutdown;
  Counter closed_protocol;  // the handler's own reason (Connection::close(code, text))
  Counter closed_idle;      // Connection::set_idle_timeout
  Counter write_timeouts;  // reset after write_timeout or close_timeout without progress
};

}  // namespace netloop
