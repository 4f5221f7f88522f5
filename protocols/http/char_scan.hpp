// Character classes of the HTTP grammar (RFC 9110/9112, RFC 3986) and scanners that skip
// a run of one class sixteen bytes at a time with SSE2, a byte at a time elsewhere. The
// table is the definition; the vector paths must agree with it byte for byte (the unit
// test test_char_scan checks every byte value at every lane).
#pragma once

#include <array>
#include <cstdint>
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
inline const char* vector_skip(const char* p, const char* end, uint8_t cls) noexcept {
  while (end - p >= 16) {
    int mask = printable_except<Bad...>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    if (mask) return p + __builtin_ctz(unsigned(mask));
    p += 16;
  }
  return scalar_skip(p, end, cls);
}
#endif

}  // namespace detail

// Each returns the first byte at or after `p` (and before `end`) outside its class.
// Tokens (methods, field names) are short: the table alone beats setting up seventeen
// vector comparisons for them.
inline const char* skip_tchars(const char* p, const char* end) noexcept {
  return detail::scalar_skip(p, end, kTchar);
}

inline const char* skip_target_chars(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  return detail::vector_skip<'"', '#', '<', '>', '\\', '^', '`', '{', '|', '}'>(p, end, kTarget);
#else
  return detail::scalar_skip(p, end, kTarget);
#endif
}

inline const char* skip_host_chars(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  return detail::vector_skip<'"', '#', '/', '<', '>', '?', '@', '\\', '^', '`', '{', '|', '}'>(
      p, end, kHost);
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
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i ctl = _mm_cmplt_epi8(_mm_xor_si128(v, bias), space);  // unsigned v < 0x20
    __m128i bad = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, tab), ctl),
                               _mm_cmpeq_epi8(v, del));
    int mask = _mm_movemask_epi8(bad);
    if (mask) return p + __builtin_ctz(unsigned(mask));
    p += 16;
  }
#endif
  return detail::scalar_skip(p, end, kValue);
}

inline bool all_of(std::string_view s, const char* (*skip)(const char*, const char*)) noexcept {
  return skip(s.data(), s.data() + s.size()) == s.data() + s.size();
}

}  // namespace netloop::http::scan
