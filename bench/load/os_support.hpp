// What netloop-load's clients share of the system: a nanosecond clock for latencies and
// enough file descriptors for the run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>

namespace netloop::load {

// CLOCK_MONOTONIC in nanoseconds (a vDSO call, no system call).
inline uint64_t now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

// One descriptor per connection plus a few for the loop: raises the soft limit toward the
// hard one when the run needs it. False (with `why` naming `flag`) when it cannot.
bool ensure_descriptors(size_t connections, std::string* why, const char* flag);

}  // namespace netloop::load
