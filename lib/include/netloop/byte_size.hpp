// Sizes as people write them on a command line: "65536", "64k", "1m" (binary units).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace netloop {

// Bytes for a whole number with an optional k/K (1024) or m/M (1024²) suffix; nothing for
// anything else (signs, spaces, fractions, other suffixes) or a value past SIZE_MAX.
std::optional<size_t> parse_byte_size(std::string_view text) noexcept;

}  // namespace netloop
