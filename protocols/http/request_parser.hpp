// An incremental, zero-copy HTTP/1.x request-head parser (RFC 9112): a pure function over
// bytes with three outcomes, views into the caller's buffer and no allocation.
//
// Policy (the strict choices a public server should make):
// - Lines end in CRLF. A bare LF, or a CR not followed by LF, is a 400: accepting both
//   lets a front proxy and this server disagree on where a header ends.
// - Request line: method SP request-target SP HTTP-version, single spaces. Up to
//   `max_empty_lines` CRLFs before it are skipped (RFC 9112 §2.2).
// - Field lines: name ":" OWS value OWS. Whitespace before the colon, obsolete line
//   folding, control characters (but HTAB) in values and non-token names are 400s.
// - HTTP/1.0 and 1.1. 1.x with x > 1 is read as 1.1 (RFC 9110 §2.5); other majors 505;
//   anything not shaped "HTTP/d.d" 400.
// - Host: exactly one in 1.1 (400 otherwise), at most one in 1.0.
// - Transfer-Encoding in a request is a 400 (we never read chunked request bodies); so is a
//   repeated, empty or malformed Content-Length, or one of more than 18 digits.
// - Limits: a request line longer than `max_request_line` is a 414, a head (request line
//   and fields) longer than `max_head_bytes` or with more than `max_headers` fields a 431.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace netloop::http {

enum class Method : uint8_t { get, head, post, put, delete_, connect, options, trace, patch, unknown };
std::string_view to_string(Method m) noexcept;

struct ParserLimits {
  size_t max_request_line = 8 * 1024;  // 414 past it
  size_t max_head_bytes = 16 * 1024;   // 431 past it (request line + fields + CRLFs)
  size_t max_headers = 64;             // 431 past it; at most kMaxHeaders
  size_t max_empty_lines = 4;          // CRLFs tolerated before the request line
};

struct Header {
  std::string_view name;   // as sent (compare case-insensitively)
  std::string_view value;  // without surrounding whitespace
};

// A field the responder acts on, noted while parsing so that it is not searched for
// again: the first line's value and how many lines of that name came (0: absent). A list
// field sent on several lines (If-None-Match, Accept-Encoding) is their values joined by
// commas (RFC 9110 §5.3): `Request::for_each_value` walks them all.
struct FieldRef {
  std::string_view value;
  uint8_t count = 0;  // saturates at 255
  bool present() const noexcept { return count > 0; }
};

inline constexpr size_t kMaxHeaders = 128;

// One parsed request head. Every view points into the parsed input, valid until the
// caller consumes those bytes.
struct Request {
  Method method = Method::unknown;
  std::string_view method_name;
  std::string_view target;  // the request-target as sent
  std::string_view path;    // its path, raw (not yet percent-decoded), always starting with '/'
                            // (absolute-form targets are reduced to it); empty for "*"
  std::string_view query;   // after '?', without it
  uint8_t version_minor = 1;  // HTTP/1.<minor>: 0 or 1
  std::string_view host;      // Host field, or the authority of an absolute-form target
  bool has_host = false;
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool keep_alive = true;  // after the version's default and every Connection field
  // The fields of conditional, range and content-coding requests (RFC 9110 §13, §14,
  // §12.5.3).
  FieldRef if_match, if_none_match, if_modified_since, if_unmodified_since, if_range, range,
      accept_encoding;
  std::array<Header, kMaxHeaders> headers;
  size_t header_count = 0;

  // The first field with this name (case-insensitive), or nullptr.
  const Header* find(std::string_view name) const noexcept;
  // Calls fn(value) for every field line with this name, in order.
  template <class Fn>
  void for_each_value(std::string_view name, Fn&& fn) const;
};

enum class ParseStatus : uint8_t { complete, need_more, error };

struct ParseResult {
  ParseStatus status = ParseStatus::need_more;
  size_t consumed = 0;   // complete: bytes of the head, CRLFCRLF included
  uint16_t http_status = 0;  // error: 400, 414, 431 or 505
  std::string_view reason;   // error: what was wrong, for logs and the response body
};

// Parses one request head at a time. Keeps only how far the input was scanned, so data
// arriving in pieces is not rescanned from the start (and a slowloris costs O(n)).
class RequestParser {
 public:
  explicit RequestParser(const ParserLimits& limits = {}) noexcept
      : limits_(limits), max_fields_(limits.max_headers < kMaxHeaders ? limits.max_headers : kMaxHeaders) {}

  // `input` starts at the first byte of the request (or the empty lines before it) and
  // is the same bytes as last time plus whatever arrived since. Never reads past it.
  ParseResult parse(std::string_view input, Request& out) noexcept;
  // Forgets the scan position: call after consuming a complete request, or on new input.
  void reset() noexcept {
    scanned_ = line_start_ = leading_ = field_lines_ = 0;
    line_checked_ = false;
  }
  // True when some bytes of a request (not only empty lines) have been seen.
  bool in_progress() const noexcept { return scanned_ > leading_; }

  const ParserLimits& limits() const noexcept { return limits_; }

 private:
  ParseResult parse_head(std::string_view head, bool line_in_out, Request& out) const noexcept;
  ParseResult parse_fields(const char* p, const char* end, Request& out,
                           size_t& consumed) const noexcept;
  bool parse_fast(std::string_view input, Request& out, size_t& consumed) const noexcept;

  ParserLimits limits_;
  size_t max_fields_;      // the smaller of limits_.max_headers and kMaxHeaders
  size_t scanned_ = 0;     // bytes already checked for line ends
  size_t line_start_ = 0;  // where the current line starts
  size_t leading_ = 0;     // bytes of empty lines before the request line
  size_t field_lines_ = 0;  // field lines seen so far
  bool line_checked_ = false;  // the request line was complete and found valid
};

// Optional whitespace (RFC 9110 §5.6.3): space and horizontal tab.
inline bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }
inline std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// Case-insensitive ASCII comparison, for field names and tokens.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = char(x + 32);
    if (y >= 'A' && y <= 'Z') y = char(y + 32);
    if (x != y) return false;
  }
  return true;
}

template <class Fn>
void Request::for_each_value(std::string_view name, Fn&& fn) const {
  for (size_t i = 0; i < header_count; ++i)
    if (iequals(headers[i].name, name)) fn(headers[i].value);
}

}  // namespace netloop::http
