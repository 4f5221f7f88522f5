// The bytes every echo message (TCP) and datagram payload (UDP) is cut from: message
// `seq` of connection `id` is the window of the pattern starting at
// (id * kConnStride + seq) % kPatternPeriod, so consecutive messages, and different
// connections, differ, and a lost, repeated, reordered or crossed message shows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace netloop::load {

constexpr size_t kPatternPeriod = 251;  // prime
constexpr size_t kConnStride = 7919;

// Bytes without short repeats (xorshift64), enough for windows of `size` bytes.
inline std::vector<char> make_pattern(size_t size) {
  std::vector<char> pattern(size + kPatternPeriod);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (char& c : pattern) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = char(x >> 56);
  }
  return pattern;
}

inline size_t pattern_offset(size_t id, uint64_t seq) noexcept {
  return (id * kConnStride + seq) % kPatternPeriod;
}

}  // namespace netloop::load
