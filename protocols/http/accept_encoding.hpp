// Accept-Encoding (RFC 9110 §12.5.3): which precompressed representation a client takes.
// Pure: no I/O, no allocation.
#pragma once

#include <cstdint>
#include <string_view>

namespace netloop::http {

// The content codings a served file may have on disk besides itself.
enum class Coding : uint8_t { identity = 0, br = 1, gzip = 2 };
inline constexpr uint8_t coding_bit(Coding c) noexcept { return uint8_t(1u << uint8_t(c)); }
// "br", "gzip" (the value of Content-Encoding), "" for identity; ".br", ".gz" as a suffix.
std::string_view coding_name(Coding c) noexcept;
std::string_view coding_suffix(Coding c) noexcept;

// The coding to serve, given `available` (coding_bit()s of the siblings that exist; the
// identity representation always exists) and the request's Accept-Encoding:
// - `present` false (no field): identity.
// - Otherwise each element is a coding with an optional ";q=" weight (0 to 1, at most
//   three decimals; "q" case-insensitive); codings are case-insensitive; "x-gzip" is
//   gzip; "*" stands for every coding not named; a coding with q=0 is refused. A
//   malformed element is skipped.
// - identity is acceptable unless refused ("identity;q=0", or "*;q=0" without identity
//   named).
// - The available acceptable coding with the highest q wins; on a tie br, then gzip, then
//   identity. When none is acceptable, identity (the response without a coding, which
//   §12.5.3 says to send rather than an error).
Coding choose_coding(std::string_view accept_encoding, bool present, uint8_t available) noexcept;

}  // namespace netloop::http
