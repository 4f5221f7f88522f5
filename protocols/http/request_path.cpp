// Percent-decoding and dot-segment resolution for request paths.
#include "http/request_path.hpp"

#include "http/char_scan.hpp"

#include <array>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace netloop::http {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

PathResult refuse(std::string_view why) { return {400, why, false}; }

}  // namespace

namespace {

// A path with nothing to decode or resolve ("/css/site.css", "/docs/"): no '%', no
// segment starting with '.', no empty segment but a final one, no control character.
bool is_plain(std::string_view raw) noexcept {
  const char* p = raw.data();
  const char* end = p + raw.size();
#if defined(__SSE2__)
  // Sixteen bytes at a time: a '%', a control character or DEL, or a '/' followed by '/'
  // or '.' (the second load is one byte further on, so 17 bytes must be there).
  const __m128i bias = _mm_set1_epi8(char(0x80));
  const __m128i space = _mm_set1_epi8(char(0x20 ^ 0x80));
  const __m128i pct = _mm_set1_epi8('%');
  const __m128i del = _mm_set1_epi8(0x7f);
  const __m128i slash = _mm_set1_epi8('/');
  const __m128i dot = _mm_set1_epi8('.');
  while (end - p >= 17) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1));
    __m128i bad = _mm_or_si128(_mm_cmpeq_epi8(v, pct), _mm_cmpeq_epi8(v, del));
    bad = _mm_or_si128(bad, _mm_cmplt_epi8(_mm_xor_si128(v, bias), space));
    __m128i pair = _mm_and_si128(_mm_cmpeq_epi8(v, slash),
                                 _mm_or_si128(_mm_cmpeq_epi8(next, slash), _mm_cmpeq_epi8(next, dot)));
    if (_mm_movemask_epi8(_mm_or_si128(bad, pair))) return false;
    p += 16;
  }
  if (p == end) return true;
  // The last 1..16 bytes (most paths are no longer): loaded in bounds, zeros above; the
  // last byte's successor is a zero lane, so it pairs with nothing.
  const size_t n = size_t(end - p);
  __m128i v = scan::detail::load_partial(p, n);
  __m128i next = _mm_srli_si128(v, 1);
  __m128i bad = _mm_or_si128(_mm_cmpeq_epi8(v, pct), _mm_cmpeq_epi8(v, del));
  bad = _mm_or_si128(bad, _mm_cmplt_epi8(_mm_xor_si128(v, bias), space));
  __m128i pair = _mm_and_si128(_mm_cmpeq_epi8(v, slash),
                               _mm_or_si128(_mm_cmpeq_epi8(next, slash), _mm_cmpeq_epi8(next, dot)));
  return scan::detail::first_lanes(_mm_movemask_epi8(_mm_or_si128(bad, pair)), n) == 0;
#else
  // 1: never plain ('%', controls, DEL); 2: '/' (plain unless '/' or '.' follows).
  static constexpr auto kKind = [] {
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 0x20; ++c) t[size_t(c)] = 1;
    t[0x7f] = 1;
    t['%'] = 1;
    t['/'] = 2;
    return t;
  }();
  for (; p < end; ++p) {
    uint8_t kind = kKind[static_cast<unsigned char>(*p)];
    if (kind == 0) continue;
    if (kind == 1) return false;
    if (p + 1 < end && (p[1] == '/' || p[1] == '.')) return false;
  }
  return true;
#endif
}

}  // namespace

bool is_plain_path(std::string_view raw) noexcept {
  return !raw.empty() && raw.front() == '/' && is_plain(raw);
}

PathResult normalize_path(std::string_view raw, std::string& out) {
  out.clear();
  if (raw.empty() || raw.front() != '/') return refuse("path does not start with '/'");
  if (is_plain(raw)) {  // the common case: the path as sent, without its slashes at the ends
    bool directory = raw.back() == '/';
    out.assign(raw.data() + 1, raw.size() - 1 - (directory && raw.size() > 1 ? 1 : 0));
    return {0, {}, directory};
  }
  // Decode and resolve in one pass, segment by segment: `out` grows by whole segments,
  // and ".." drops the last one. Decoding happens once, before the segment is judged, so
  // "%2e%2e" is "..", and "%2f" (which would turn one segment into two) is refused.
  size_t i = 1;
  bool last_was_dir = true;  // "/" alone names the root
  while (i <= raw.size()) {
    size_t seg_start = out.size();
    if (!out.empty()) out.push_back('/');
    size_t name_start = out.size();
    while (i < raw.size() && raw[i] != '/') {
      char c = raw[i];
      if (c == '%') {
        if (i + 2 >= raw.size()) return refuse("malformed percent-encoding");
        int hi = hex_value(raw[i + 1]), lo = hex_value(raw[i + 2]);
        if (hi < 0 || lo < 0) return refuse("malformed percent-encoding");
        c = char(hi * 16 + lo);
        if (c == '\0') return refuse("encoded NUL in path");
        if (c == '/' || c == '\\') return refuse("encoded slash in path");
        i += 3;
      } else {
        ++i;
      }
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        return refuse("control character in path");
      out.push_back(c);
    }
    std::string_view name(out.data() + name_start, out.size() - name_start);
    if (name.empty() || name == ".") {
      out.resize(seg_start);
      last_was_dir = true;
    } else if (name == "..") {
      out.resize(seg_start);
      if (out.empty()) return refuse("path climbs above the root");
      size_t cut = out.rfind('/');
      out.resize(cut == std::string::npos ? 0 : cut);
      last_was_dir = true;
    } else {
      last_was_dir = false;
    }
    ++i;  // past the '/' (or the end)
  }
  return {0, {}, last_was_dir};
}

}  // namespace netloop::http
