// parse_range: a Range field's bytes= set, checked whole, resolved against a length, sorted
// and coalesced.
#include "http/byte_range.hpp"

#include <algorithm>

#include "http/request_parser.hpp"

namespace netloop::http {
namespace {

constexpr size_t kMaxDigits = 19;  // 10^19 - 1 < 2^64: no overflow check needed

enum class Number : uint8_t { absent, ok, malformed };

// Decimal digits at s[pos], moving pos past them.
Number read_number(std::string_view s, size_t& pos, uint64_t& out) noexcept {
  size_t start = pos;
  uint64_t v = 0;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    if (pos - start == kMaxDigits) return Number::malformed;
    v = v * 10 + uint64_t(s[pos] - '0');
    ++pos;
  }
  if (pos == start) return Number::absent;
  out = v;
  return Number::ok;
}

enum class Spec : uint8_t { satisfiable, unsatisfiable, malformed };

// One range-spec at s[pos] (int-range or suffix-range) against `length`.
Spec read_spec(std::string_view s, size_t& pos, uint64_t length, ByteRange& out) noexcept {
  uint64_t first = 0, last = 0;
  Number f = read_number(s, pos, first);
  if (f == Number::malformed || pos >= s.size() || s[pos] != '-') return Spec::malformed;
  ++pos;
  Number l = read_number(s, pos, last);
  if (l == Number::malformed) return Spec::malformed;
  if (f == Number::absent) {  // "-suffix": the last `last` bytes
    if (l == Number::absent) return Spec::malformed;
    if (last == 0 || length == 0) return Spec::unsatisfiable;
    out = {length - std::min(last, length), length - 1};
    return Spec::satisfiable;
  }
  if (l == Number::ok && last < first) return Spec::malformed;  // even when past the end
  if (first >= length) return Spec::unsatisfiable;
  out = {first, l == Number::ok ? std::min(last, length - 1) : length - 1};
  return Spec::satisfiable;
}

}  // namespace

RangeSet parse_range(std::string_view value, uint64_t length) noexcept {
  RangeSet set;  // ignore
  if (value.size() < 6 || !iequals(value.substr(0, 5), "bytes") || value[5] != '=') return set;

  // Every spec is read before any is acted on: a malformed one anywhere voids the set.
  std::array<ByteRange, kMaxRangeSpecs> found;
  size_t satisfiable = 0, specs = 0;
  size_t pos = 6;
  // [ spec ] *( OWS "," OWS [ spec ] ): empty elements allowed, OWS only around commas.
  for (;;) {
    if (pos < value.size() && value[pos] != ',') {
      if (++specs > kMaxRangeSpecs) return set;
      switch (read_spec(value, pos, length, found[satisfiable])) {
        case Spec::satisfiable: ++satisfiable; break;
        case Spec::unsatisfiable: break;
        case Spec::malformed: return set;
      }
    }
    while (pos < value.size() && is_ows(value[pos])) ++pos;
    if (pos == value.size()) break;
    if (value[pos] != ',') return set;
    ++pos;
    while (pos < value.size() && is_ows(value[pos])) ++pos;
  }
  if (specs == 0) return set;  // "bytes=" or commas only: range-set is 1#range-spec
  if (satisfiable == 0) {
    set.kind = RangeSet::Kind::unsatisfiable;
    return set;
  }

  std::sort(found.begin(), found.begin() + ptrdiff_t(satisfiable),
            [](const ByteRange& a, const ByteRange& b) { return a.first < b.first; });
  size_t n = 0;
  for (size_t i = 0; i < satisfiable; ++i) {
    const ByteRange& r = found[i];
    // last <= length - 1, so last + 1 cannot wrap.
    if (n > 0 && r.first <= set.ranges[n - 1].last + 1) {
      set.ranges[n - 1].last = std::max(set.ranges[n - 1].last, r.last);
      continue;
    }
    if (n == kMaxRanges) return set;  // too many after merging: ignore
    set.ranges[n++] = r;
  }
  set.kind = RangeSet::Kind::satisfiable;
  set.count = n;
  return set;
}

}  // namespace netloop::http
