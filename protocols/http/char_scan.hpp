// Character classes of the HTTP grammar (RFC 9110/9112, RFC 3986) and scanners that skip
// a run of one class sixteen bytes at a time with SSE2, a byte at a time elsewhere. The
// table is the definition; the vector paths must agree with it byte for byte (the unit
// test test_char_scan checks every byte value at every lane and every tail length).
// Nothing here reads outside [p, end): a tail shorter than 16 bytes is loaded with two
// overlapping in-bounds loads (load_partial), not by reading on past `end`.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace netloop::http::scan {

enum : uint8_t {
  kTchar = 1,   // token characters: method, field names
  kTarget = 2,  // request-target: RFC 3986 pchar, "/", "?", and the brackets of IPv6
  kHost = 4,    // Host field and authority: reg-name, IP literal, ":" port
  kValue = 8,   // field values: VCHAR, obs-text, SP, HTAB
};

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  auto add = [&t](std::string_view chars, uint8_t cls) {
    for (char c : chars) t[static_cast<unsigned char>(c)] |= cls;
  };
  std::string_view alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  add(alnum, kTchar | kTarget | kHost);
  add("!#$%&'*+-.^_`|~", kTchar);
  add("-._~!$&'()*+,;=:@/?%[]", kTarget);
  add("-._~!$&'()*+,;=%:[]", kHost);
  for (int c = 0x21; c <= 0x7e; ++c) t[size_t(c)] |= kValue;
  for (int c = 0x80; c <= 0xff; ++c) t[size_t(c)] |= kValue;  // obs-text
  t[' '] |= kValue;
  t['\t'] |= kValue;
  return t;
}
inline constexpr std::array<uint8_t, 256> kClass = make_classes();

inline bool is(char c, uint8_t cls) noexcept {
  return (kClass[static_cast<unsigned char>(c)] & cls) != 0;
}

namespace detail {

inline const char* scalar_skip(const char* p, const char* end, uint8_t cls) noexcept {
  while (p < end && is(*p, cls)) ++p;
  return p;
}

#if defined(__SSE2__)
// The n bytes at p (1 <= n <= 16) in lanes 0..n-1, zeros above. Reads exactly those n
// bytes, with at most two overlapping loads (little-endian: x86).
inline __m128i load_partial(const char* p, size_t n) noexcept {
  uint64_t lo = 0, hi = 0;
  if (n >= 8) {
    std::memcpy(&lo, p, 8);
    if (n > 8) {  // bytes 8..n-1: the last eight, shifted down past those already in lo
      std::memcpy(&hi, p + n - 8, 8);
      hi >>= (16 - n) * 8;
    }
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    lo = a;
    if (n > 4) {
      std::memcpy(&b, p + n - 4, 4);
      lo |= uint64_t(b >> ((8 - n) * 8)) << 32;
    }
  } else {
    for (size_t i = 0; i < n; ++i) lo |= uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return _mm_set_epi64x(int64_t(hi), int64_t(lo));
}

// Lanes 0..n-1 of a movemask result (n <= 16).
inline unsigned first_lanes(int mask, size_t n) noexcept {
  return unsigned(mask) & ((1u << n) - 1);
}

// Bytes outside 0x21..0x7e (controls, space, DEL, non-ASCII) or equal to one of `Bad`.
template <char... Bad>
inline int printable_except(__m128i v) noexcept {
  const __m128i bias = _mm_set1_epi8(char(0x80));
  __m128i x = _mm_xor_si128(v, bias);  // unsigned order as signed
  __m128i bad = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(char(0x21 ^ 0x80))),
                             _mm_cmpgt_epi8(x, _mm_set1_epi8(char(0x7e ^ 0x80))));
  ((bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, _mm_set1_epi8(Bad)))), ...);
  return _mm_movemask_epi8(bad);
}

template <char... Bad>
inline const char* vector_skip(const char* p, const char* end) noexcept {
  while (end - p >= 16) {
    int mask = printable_except<Bad...>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    if (mask) return p + __builtin_ctz(unsigned(mask));
    p += 16;
  }
  if (p == end) return end;
  size_t n = size_t(end - p);
  unsigned mask = first_lanes(printable_except<Bad...>(load_partial(p, n)), n);
  return mask ? p + __builtin_ctz(mask) : end;
}
#endif

}  // namespace detail

// Each returns the first byte at or after `p` (and before `end`) outside its class.
// Tokens (methods, field names) are short: a byte at a time through the table beats both
// the seventeen vector comparisons a tchar check takes and four table lookups per round
// (callgrind, pipelined GETs: ~100 and ~20 instructions more per request).
inline const char* skip_tchars(const char* p, const char* end) noexcept {
  return detail::scalar_skip(p, end, kTchar);
}

inline const char* skip_target_chars(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  return detail::vector_skip<'"', '#', '<', '>', '\\', '^', '`', '{', '|', '}'>(p, end);
#else
  return detail::scalar_skip(p, end, kTarget);
#endif
}

// The path part of an origin-form target: target characters but '?'.
inline const char* skip_path_chars(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  return detail::vector_skip<'"', '#', '<', '>', '?', '\\', '^', '`', '{', '|', '}'>(p, end);
#else
  while (p < end && *p != '?' && is(*p, kTarget)) ++p;
  return p;
#endif
}

inline const char* skip_host_chars(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  return detail::vector_skip<'"', '#', '/', '<', '>', '?', '@', '\\', '^', '`', '{', '|', '}'>(
      p, end);
#else
  return detail::scalar_skip(p, end, kHost);
#endif
}

inline const char* skip_value_chars(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  // VCHAR, obs-text, SP and HTAB: only controls other than HTAB, and DEL, stop it.
  const __m128i bias = _mm_set1_epi8(char(0x80));
  const __m128i space = _mm_set1_epi8(char(0x20 ^ 0x80));
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7f);
  auto bad = [&](__m128i v) {
    __m128i ctl = _mm_cmplt_epi8(_mm_xor_si128(v, bias), space);  // unsigned v < 0x20
    return _mm_movemask_epi8(
        _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, tab), ctl), _mm_cmpeq_epi8(v, del)));
  };
  while (end - p >= 16) {
    int mask = bad(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    if (mask) return p + __builtin_ctz(unsigned(mask));
    p += 16;
  }
  if (p == end) return end;
  size_t n = size_t(end - p);
  unsigned mask = detail::first_lanes(bad(detail::load_partial(p, n)), n);
  return mask ? p + __builtin_ctz(mask) : end;
#else
  return detail::scalar_skip(p, end, kValue);
#endif
}

inline bool all_of(std::string_view s, const char* (*skip)(const char*, const char*)) noexcept {
  return skip(s.data(), s.data() + s.size()) == s.data() + s.size();
}

}  // namespace netloop::http::scan
