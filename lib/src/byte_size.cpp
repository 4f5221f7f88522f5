// parse_byte_size: "64k" -> 65536.
#include "netloop/byte_size.hpp"

#include <charconv>
#include <cstdint>

namespace netloop {

std::optional<size_t> parse_byte_size(std::string_view s) noexcept {
  size_t mult = 1;
  if (!s.empty()) {
    char last = s.back();
    if (last == 'k' || last == 'K') mult = 1024;
    if (last == 'm' || last == 'M') mult = 1024 * 1024;
    if (mult != 1) s.remove_suffix(1);
  }
  size_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  if (v > SIZE_MAX / mult) return std::nullopt;
  return v * mult;
}

}  // namespace netloop
