// The loop's clock and durations.
#pragma once

#include <chrono>

namespace netloop {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;
using std::chrono::milliseconds;
using std::chrono::seconds;

}  // namespace netloop
