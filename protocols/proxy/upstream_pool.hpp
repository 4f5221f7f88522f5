// UpstreamPool: which upstream a client is joined to next. Round robin over the upstreams,
// passing over one that failed to connect for a while (ProxyOptions::retry_after); a
// client whose connect failed is tried on the next one. Pure: the time is given, so it is
// tested alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "netloop/clock.hpp"

namespace netloop::proxy {

class UpstreamPool {
 public:
  // `count` upstreams, from 1 to 64 (a client's tries fit in one 64-bit mask).
  UpstreamPool(size_t count, Duration retry_after);

  // The upstream for a client that has tried those in `tried` (bit i: upstream i), or
  // none when it has tried them all. Healthy upstreams come first, in turn; when every
  // one left is being passed over, the one whose wait ends first is tried all the same
  // (so a recovered upstream is found without waiting, and a client is never refused
  // without a try).
  std::optional<size_t> pick(TimePoint now, uint64_t tried);
  // A connect to upstream `i` failed: pass it over until now + retry_after. True when it
  // was healthy until now (worth a log line; the failures after it are not).
  bool failed(size_t i, TimePoint now);
  // A connect to upstream `i` succeeded: it is healthy again.
  void connected(size_t i) { down_until_[i] = TimePoint{}; }
  bool passed_over(size_t i, TimePoint now) const { return down_until_[i] > now; }
  size_t size() const noexcept { return down_until_.size(); }

 private:
  std::vector<TimePoint> down_until_;  // TimePoint{} (the epoch): healthy
  size_t next_ = 0;                    // round robin cursor
  Duration retry_after_;
};

}  // namespace netloop::proxy
