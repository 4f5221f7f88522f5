// UpstreamPool: round robin with a pause for upstreams that failed.
#include "proxy/upstream_pool.hpp"

#include <cassert>

namespace netloop::proxy {

UpstreamPool::UpstreamPool(size_t count, Duration retry_after)
    : down_until_(count), retry_after_(retry_after) {
  assert(count >= 1 && count <= 64);
}

std::optional<size_t> UpstreamPool::pick(TimePoint now, uint64_t tried) {
  const size_t n = down_until_.size();
  std::optional<size_t> soonest;
  for (size_t k = 0; k < n; ++k) {
    size_t i = (next_ + k) % n;
    if (tried & (uint64_t{1} << i)) continue;
    if (down_until_[i] <= now) {
      next_ = (i + 1) % n;
      return i;
    }
    if (!soonest || down_until_[i] < down_until_[*soonest]) soonest = i;
  }
  return soonest;
}

bool UpstreamPool::failed(size_t i, TimePoint now) {
  bool was_healthy = down_until_[i] <= now;
  down_until_[i] = now + retry_after_;
  return was_healthy;
}

}  // namespace netloop::proxy
