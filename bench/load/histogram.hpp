// Histogram: a log-linear latency histogram with a fixed bucket array (no allocation
// per sample), exact below 256 ns and within 1/128 (0.8%) of the value above.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace netloop::load {

class Histogram {
 public:
  // Each power of two above kLinear is split into kSub equal-width buckets.
  static constexpr unsigned kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t(1) << kSubBits;       // 128
  static constexpr uint64_t kLinear = uint64_t(1) << (kSubBits + 1);  // 256 exact buckets
  static constexpr size_t kBuckets = kLinear + (64 - kSubBits - 1) * kSub;

  void record(uint64_t value) noexcept {
    ++counts_[index_of(value)];
    ++count_;
    sum_ += value;
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }
  void clear() noexcept;

  uint64_t count() const noexcept { return count_; }
  uint64_t min() const noexcept { return count_ ? min_ : 0; }
  uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return count_ ? double(sum_) / double(count_) : 0.0; }
  // The value below which a fraction `q` (0..1] of the samples lie: the midpoint of the
  // bucket holding the sample of that rank, clamped to the observed min and max.
  uint64_t percentile(double q) const noexcept;

  static size_t index_of(uint64_t v) noexcept;
  static uint64_t lowest_in(size_t index) noexcept;   // smallest value of the bucket
  static uint64_t highest_in(size_t index) noexcept;  // largest value of the bucket

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace netloop::load
