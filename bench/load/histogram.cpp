// Histogram: bucket arithmetic and percentiles.
#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace netloop::load {

size_t Histogram::index_of(uint64_t v) noexcept {
  if (v < kLinear) return size_t(v);
  unsigned msb = 63u - unsigned(std::countl_zero(v));  // >= kSubBits + 1
  unsigned shift = msb - kSubBits;                      // v >> shift is in [kSub, 2 kSub)
  uint64_t sub = (v >> shift) - kSub;
  return size_t(kLinear + (shift - 1) * kSub + sub);
}

uint64_t Histogram::lowest_in(size_t index) noexcept {
  if (index < kLinear) return index;
  size_t j = index - kLinear;
  unsigned shift = unsigned(j / kSub) + 1;
  return (kSub + j % kSub) << shift;
}

uint64_t Histogram::highest_in(size_t index) noexcept {
  if (index < kLinear) return index;
  unsigned shift = unsigned((index - kLinear) / kSub) + 1;
  return lowest_in(index) + ((uint64_t(1) << shift) - 1);
}

void Histogram::clear() noexcept {
  counts_.fill(0);
  count_ = sum_ = max_ = 0;
  min_ = UINT64_MAX;
}

uint64_t Histogram::percentile(double q) const noexcept {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = uint64_t(std::ceil(q * double(count_)));
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      uint64_t lo = lowest_in(i), hi = highest_in(i);
      return std::clamp(lo + (hi - lo) / 2, min_, max_);
    }
  }
  return max_;
}

}  // namespace netloop::load
