// Range requests (RFC 9110 §14): the bytes= range set of a Range field, resolved against a
// representation's length. Pure: no I/O, no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace netloop::http {

struct ByteRange {
  uint64_t first = 0;  // offsets into the representation, both inclusive
  uint64_t last = 0;
  uint64_t length() const noexcept { return last - first + 1; }
};

// At most this many ranges are answered (after merging); a request for more gets the
// whole representation (200), so a long list of tiny ranges cannot cost more than the
// file (RFC 9110 §14.2 lets a server ignore such sets).
inline constexpr size_t kMaxRanges = 16;
// Range specs read from one field; a longer set is ignored whole (200).
inline constexpr size_t kMaxRangeSpecs = 64;

struct RangeSet {
  enum class Kind : uint8_t {
    ignore,         // no Range, another unit, a malformed set or too many ranges: 200
    satisfiable,    // `ranges[0..count)`: 206
    unsatisfiable,  // no spec overlaps the representation: 416, "Content-Range: bytes */LEN"
  };
  Kind kind = Kind::ignore;
  size_t count = 0;
  std::array<ByteRange, kMaxRanges> ranges{};
};

// Parses `value` (a Range field value: "bytes=" range-spec *( OWS "," OWS range-spec ),
// the unit case-insensitive, empty list elements allowed) for a representation of
// `length` bytes:
// - "first-last": last past the end is clipped; first past the end is unsatisfiable;
//   last < first makes the whole set malformed (ignore).
// - "first-": from first to the end; unsatisfiable when first >= length.
// - "-suffix": the last `suffix` bytes (all of them when suffix >= length); "-0" is
//   unsatisfiable.
// - Numbers are decimal digits only, at most 19 of them.
// Satisfiable ranges are sorted by first offset, and overlapping or adjacent ones merged
// (§14.2 allows coalescing); more than kMaxRanges after that, or more than kMaxRangeSpecs
// specs, is `ignore`. At least one satisfiable spec gives `satisfiable` (the unsatisfiable
// ones are dropped); none, `unsatisfiable`.
RangeSet parse_range(std::string_view value, uint64_t length) noexcept;

}  // namespace netloop::http
