// Private: the factory and probe of each backend compiled into this build.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "netloop/poller.hpp"

namespace netloop::backends {

struct Backend {
  const char* name;
  // Returns an empty string when this kernel can run the backend, or why not.
  std::string (*probe)();
  Result<std::unique_ptr<Poller>> (*create)();
};

#ifdef NETLOOP_HAVE_EPOLL
extern const Backend epoll;
#endif
#ifdef NETLOOP_HAVE_KQUEUE
extern const Backend kqueue;
#endif
#ifdef NETLOOP_HAVE_IO_URING
extern const Backend io_uring;
#endif
extern const Backend poll;
extern const Backend select;

}  // namespace netloop::backends

namespace netloop::backends {

// A wait() timeout as a deadline, so a wait that is interrupted (EINTR: a signal, or
// io_uring task work) resumes for the time left instead of returning early. The clock is
// read only for a finite, non-zero timeout: the common waits (forever, or a poll) cost none.
class WaitDeadline {
 public:
  explicit WaitDeadline(int timeout_ms) : timeout_ms_(timeout_ms) {
    if (timeout_ms > 0) end_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  }
  // Milliseconds left (rounded up), 0 when past, -1 for no deadline.
  int remaining_ms() const {
    if (timeout_ms_ <= 0) return timeout_ms_ < 0 ? -1 : 0;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(end_ - std::chrono::steady_clock::now());
    return left.count() > 0 ? int(left.count()) : 0;
  }

 private:
  int timeout_ms_;
  std::chrono::steady_clock::time_point end_{};
};

}  // namespace netloop::backends
