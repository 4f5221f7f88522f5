// IoWatcher: one descriptor's registration with an EventLoop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>

#include "netloop/event_loop.hpp"
#include "netloop/poller.hpp"
#include "netloop/result.hpp"

namespace netloop {

// IoWatcher: one descriptor's registration with a loop. The owner keeps the descriptor;
// the watcher must be stopped (or destroyed) before the descriptor is closed.
// Interest changes are queued and applied once, before the next wait, so a flip that
// flips back costs no syscall. After stop() no event reaches the callback, not even one
// already in the batch being dispatched.
class IoWatcher {
 public:
  using Callback = std::function<void(uint32_t ready)>;

  IoWatcher(EventLoop& loop, Callback cb) : loop_(loop), cb_(std::move(cb)) {}
  ~IoWatcher() { stop(); }
  IoWatcher(const IoWatcher&) = delete;
  IoWatcher& operator=(const IoWatcher&) = delete;

  // Registers `fd` now (errors come back here: EBADF, FD_SETSIZE limits, ENOMEM).
  Result<void> start(int fd, Interest interest);
  // Serves `fd` (a bound UDP socket) by the loop's completion I/O instead: a datagram
  // channel, whose work the callback hears of as ready::readable (time for its process()).
  // ENOTSUP when the loop has no completion I/O (a readiness backend). Destroy the channel
  // before stop()ping the watcher.
  Result<std::unique_ptr<DatagramChannel>> open_datagram_channel(
      int fd, const DatagramChannelOptions& options);
  void set_interest(Interest interest);
  void stop() noexcept;

  Interest interest() const noexcept { return wanted_; }
  // Set when the poller refused a queued interest change (the callback then got
  // ready::error and the descriptor is no longer registered).
  std::error_code error() const noexcept { return error_; }
  int fd() const noexcept { return fd_; }
  bool active() const noexcept { return fd_ >= 0; }
  EventLoop& loop() const noexcept { return loop_; }

 private:
  friend class EventLoop;
  EventLoop& loop_;
  Callback cb_;
  int fd_ = -1;
  Interest wanted_ = Interest::none;
  Interest registered_ = Interest::none;
  bool queued_ = false;
  bool channel_ = false;  // served by a datagram channel: nothing registered with the poller
  std::error_code error_;
};

}  // namespace netloop
