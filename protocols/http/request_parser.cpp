// The request-head parser: a line scanner that resumes where it stopped, and a strict
// grammar check of the request line and field lines once the head is complete.
#include "http/request_parser.hpp"

#include <cstring>

#include "http/char_scan.hpp"

namespace netloop::http {
namespace {

ParseResult fail(uint16_t status, std::string_view why) noexcept {
  return {ParseStatus::error, 0, status, why};
}

Method method_of(std::string_view m) noexcept {
  switch (m.size()) {
    case 3:
      if (m == "GET") return Method::get;
      if (m == "PUT") return Method::put;
      break;
    case 4:
      if (m == "HEAD") return Method::head;
      if (m == "POST") return Method::post;
      break;
    case 5:
      if (m == "PATCH") return Method::patch;
      if (m == "TRACE") return Method::trace;
      break;
    case 6:
      if (m == "DELETE") return Method::delete_;
      break;
    case 7:
      if (m == "CONNECT") return Method::connect;
      if (m == "OPTIONS") return Method::options;
      break;
  }
  return Method::unknown;
}

// `token` (letters, digits, '-' and other tchars) equals `lower_name` (lower case letters
// and '-') ignoring case. Setting bit 5 lower-cases a letter and maps no other tchar onto
// a letter or '-', so one OR per byte does it.
// Compared a word at a time: the names we look for are 4 to 17 bytes long.
template <class Word>
inline bool folded_equal(const char* a, const char* lower) noexcept {
  Word x, y, fold;
  std::memcpy(&x, a, sizeof x);
  std::memcpy(&y, lower, sizeof y);
  std::memset(&fold, 0x20, sizeof fold);
  return (x | fold) == y;
}

inline bool token_is(std::string_view token, std::string_view lower_name) noexcept {
  size_t n = lower_name.size();
  if (token.size() != n) return false;
  const char* a = token.data();
  const char* b = lower_name.data();
  if (n >= 8) {
    for (size_t i = 0; i + 8 <= n; i += 8)
      if (!folded_equal<uint64_t>(a + i, b + i)) return false;
    return folded_equal<uint64_t>(a + n - 8, b + n - 8);  // the tail, overlapping
  }
  if (n >= 4) return folded_equal<uint32_t>(a, b) && folded_equal<uint32_t>(a + n - 4, b + n - 4);
  for (size_t i = 0; i < n; ++i)
    if ((a[i] | 0x20) != b[i]) return false;
  return true;
}

// The request line without its CRLF; fills method, target, path, query, version.
ParseResult parse_request_line(std::string_view line, Request& out) noexcept {
  // One scan: method (tokens) up to a space, target up to a space (noting its first '?'),
  // then exactly "HTTP/d.d".
  const char* p = line.data();
  const char* end = p + line.size();
  const char* m = p;
  p = scan::skip_tchars(p, end);
  if (p == end) return fail(400, "malformed request line");
  if (*p != ' ' || p == m) return fail(400, "malformed method");
  std::string_view method(m, size_t(p - m));
  const char* t = ++p;
  p = scan::skip_target_chars(p, end);
  if (p == end) return fail(400, "malformed request line");
  if (*p != ' ') return fail(400, "invalid character in request target");
  if (p == t) return fail(400, "empty request target");
  std::string_view target(t, size_t(p - t));
  std::string_view version(p + 1, size_t(end - p - 1));

  if (version == "HTTP/1.1") {
    out.version_minor = 1;
  } else {
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
        version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
      return fail(400, "malformed HTTP version");
    if (version[5] != '1') return fail(505, "HTTP version not supported");
    out.version_minor = version[7] == '0' ? 0 : 1;  // 1.x, x > 1: served as 1.1
  }

  out.method_name = method;
  out.method = method_of(method);
  out.target = target;
  out.host = {};
  out.has_host = false;

  if (target.front() == '/') {
    // origin-form, the common case
    const char* question = static_cast<const char*>(std::memchr(t, '?', target.size()));
    if (!question) {
      out.path = target;
      out.query = {};
    } else {
      out.path = std::string_view(t, size_t(question - t));
      out.query = std::string_view(question + 1, size_t(p - question - 1));
    }
    return {ParseStatus::complete, 0, 0, {}};
  } else if (target == "*") {
    out.path = {};
    out.query = {};
    return {ParseStatus::complete, 0, 0, {}};
  } else {
    // absolute-form: scheme "://" authority path-abempty [ "?" query ]
    size_t colon = target.find("://");
    if (colon == std::string_view::npos) return fail(400, "malformed request target");
    std::string_view scheme = target.substr(0, colon);
    if (!iequals(scheme, "http") && !iequals(scheme, "https"))
      return fail(400, "unsupported scheme in request target");
    std::string_view after = target.substr(colon + 3);
    size_t slash = after.find_first_of("/?");
    std::string_view authority = after.substr(0, slash);
    if (authority.empty() || !scan::all_of(authority, scan::skip_host_chars))
      return fail(400, "malformed authority in request target");
    out.host = authority;
    out.has_host = true;
    std::string_view rest = slash == std::string_view::npos ? std::string_view{} : after.substr(slash);
    size_t q = rest.find('?');
    out.path = rest.substr(0, q);
    out.query = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
    if (out.path.empty()) out.path = "/";  // absolute-form without a path
  }
  return {ParseStatus::complete, 0, 0, {}};
}

// The first bytes of `s` as a little-endian word (x86's order, which the loads below use).
constexpr uint64_t word_of(std::string_view s) noexcept {
  uint64_t w = 0;
  for (size_t i = 0; i < s.size() && i < 8; ++i) w |= uint64_t(static_cast<unsigned char>(s[i])) << (8 * i);
  return w;
}

enum class Field : uint8_t { other, host, connection };
constexpr uint64_t kHostColon = word_of("host:");
constexpr uint64_t kConnecti = word_of("connecti");
constexpr uint32_t kIonColon = uint32_t(word_of("ion:"));

// "Host:" and "Connection:" in any case, the fields nearly every request carries, matched
// with their colon a word at a time: setting bit 5 folds only the letters' positions, so
// only letters (of either case) and the colon itself match, and a match is all tchars,
// which spares the byte-at-a-time name scan. Returns the name's length (0: neither).
#if defined(__x86_64__) || defined(__i386__)
inline size_t common_field(const char* p, const char* end, Field& which) noexcept {
  if (end - p < 11) return 0;
  uint64_t w;
  std::memcpy(&w, p, 8);
  if (((w | 0x20202020u) & 0xFFFFFFFFFFu) == kHostColon) {
    which = Field::host;
    return 4;
  }
  uint32_t tail;
  std::memcpy(&tail, p + 7, 4);
  if ((w | 0x2020202020202020u) == kConnecti && (tail | 0x202020u) == kIonColon) {
    which = Field::connection;
    return 10;
  }
  return 0;
}
#else
inline size_t common_field(const char*, const char*, Field&) noexcept { return 0; }
#endif

// The common request line, "METHOD /path[?query] HTTP/1.x" and its CRLF, read straight
// from the input with no search for the line's end first. Returns the byte after the LF,
// or nullptr for anything else (another target form, another version, an error, a line
// over `max_line`), which the general path then judges. Where it succeeds the general
// path would find the same line (none of the bytes it accepts is a LF) and the same parts.
const char* fast_request_line(const char* p, const char* end, size_t max_line,
                              Request& out) noexcept {
  const char* start = p;
  p = scan::skip_tchars(p, end);
  if (p == start || end - p < 2 || p[0] != ' ' || p[1] != '/') return nullptr;
  std::string_view method(start, size_t(p - start));
  const char* t = ++p;
  p = scan::skip_path_chars(p, end);
  const char* path_end = p;
  if (p < end && *p == '?') p = scan::skip_target_chars(p + 1, end);
  // " HTTP/1.x\r\n"
  if (end - p < 11 || p[0] != ' ' || std::memcmp(p + 1, "HTTP/1.", 7) != 0 || p[9] != '\r' ||
      p[10] != '\n' || (p[8] != '1' && p[8] != '0'))
    return nullptr;
  if (size_t(p + 9 - start) > max_line) return nullptr;
  out.version_minor = p[8] == '1' ? 1 : 0;
  out.method_name = method;
  out.method = method_of(method);
  out.target = std::string_view(t, size_t(p - t));
  out.path = std::string_view(t, size_t(path_end - t));
  out.query = path_end < p ? std::string_view(path_end + 1, size_t(p - path_end - 1))
                           : std::string_view{};
  out.host = {};
  out.has_host = false;
  return p + 11;
}

// What the Connection fields of one request said. A "close" in any of them wins
// (RFC 9110 §7.6.1: the list is the union of every Connection line).
struct ConnectionTokens {
  bool close = false;
  bool keep_alive = false;
};

// Connection: a comma-separated token list.
void note_connection(std::string_view value, ConnectionTokens& seen) noexcept {
  // The common cases, one token.
  if (token_is(value, "keep-alive")) {
    seen.keep_alive = true;
    return;
  }
  if (token_is(value, "close")) {
    seen.close = true;
    return;
  }
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view token = trim_ows(value.substr(0, comma));
    if (token_is(token, "close")) seen.close = true;
    else if (token_is(token, "keep-alive")) seen.keep_alive = true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

void note(FieldRef& f, std::string_view value) noexcept {
  if (f.count == 0) f.value = value;
  if (f.count < 255) ++f.count;
}

}  // namespace

std::string_view to_string(Method m) noexcept {
  switch (m) {
    case Method::get: return "GET";
    case Method::head: return "HEAD";
    case Method::post: return "POST";
    case Method::put: return "PUT";
    case Method::delete_: return "DELETE";
    case Method::connect: return "CONNECT";
    case Method::options: return "OPTIONS";
    case Method::trace: return "TRACE";
    case Method::patch: return "PATCH";
    case Method::unknown: break;
  }
  return "unknown";
}

const Header* Request::find(std::string_view name) const noexcept {
  for (size_t i = 0; i < header_count; ++i)
    if (iequals(headers[i].name, name)) return &headers[i];
  return nullptr;
}

ParseResult RequestParser::parse(std::string_view input, Request& out) noexcept {
  if (scanned_ == 0) {
    size_t consumed = 0;
    if (parse_fast(input, out, consumed)) return {ParseStatus::complete, consumed, 0, {}};
  }
  const char* base = input.data();
  size_t pos = scanned_;
  bool line_in_out = false;  // `out` holds this call's parse of the request line
  for (;;) {
    const void* hit = pos < input.size() ? std::memchr(base + pos, '\n', input.size() - pos) : nullptr;
    if (!hit) {
      scanned_ = input.size();
      // A CR at the very end may be this line's own, its LF still on the way.
      size_t pending = input.size() - line_start_;
      if (pending > 0 && base[input.size() - 1] == '\r') --pending;
      if (!line_checked_ && pending > limits_.max_request_line)
        return fail(414, "request line too long");
      if (input.size() - leading_ > limits_.max_head_bytes)
        return fail(431, "request header fields too large");
      return {};
    }
    size_t lf = size_t(static_cast<const char*>(hit) - base);
    if (lf == line_start_ || base[lf - 1] != '\r') return fail(400, "line not ended by CRLF");
    size_t line_len = lf - 1 - line_start_;
    size_t next = lf + 1;
    if (!line_checked_) {
      if (line_len == 0) {  // an empty line before the request line
        if (next / 2 > limits_.max_empty_lines) return fail(400, "too many empty lines");
        leading_ = line_start_ = pos = next;
        continue;
      }
      if (line_len > limits_.max_request_line) return fail(414, "request line too long");
      ParseResult r = parse_request_line(input.substr(line_start_, line_len), out);
      if (r.status == ParseStatus::error) return r;
      line_checked_ = true;
      line_in_out = true;
      field_lines_ = 0;
    } else if (line_len == 0) {
      if (next - leading_ > limits_.max_head_bytes)
        return fail(431, "request header fields too large");
      ParseResult r = parse_head(input.substr(leading_, next - leading_), line_in_out, out);
      if (r.status == ParseStatus::complete) r.consumed = next;
      return r;
    } else if (++field_lines_ > limits_.max_headers || field_lines_ > kMaxHeaders) {
      return fail(431, "too many header fields");
    }
    line_start_ = pos = next;
    if (next - leading_ > limits_.max_head_bytes) return fail(431, "request header fields too large");
  }
}

// The field lines from `p` up to and including the empty line that ends the head, with
// every scan bounded by `end`. need_more when the input ends first (the fast path then
// hands over to the line scanner).
ParseResult RequestParser::parse_fields(const char* p, const char* end, Request& out,
                                        size_t& consumed) const noexcept {
  out.has_content_length = false;
  out.content_length = 0;
  out.header_count = 0;
  out.if_match = out.if_none_match = out.if_modified_since = out.if_unmodified_since =
      out.if_range = out.range = out.accept_encoding = FieldRef{};
  ConnectionTokens connection;
  bool target_host = out.has_host;  // absolute-form: the target's authority wins
  size_t host_fields = 0;
  const char* begin = p;
  for (;;) {
    if (p >= end) return {};
    if (*p == '\r') {
      if (p + 1 >= end) return {};
      if (p[1] != '\n') return fail(400, "CR without LF");
      p += 2;
      break;  // the empty line: end of the head
    }
    if (*p == ' ' || *p == '\t') return fail(400, "obsolete line folding");
    if (out.header_count >= max_fields_) return fail(431, "too many header fields");
    const char* name_start = p;
    Field field = Field::other;
    if (size_t known = common_field(p, end, field)) p += known;
    else p = scan::skip_tchars(p, end);
    if (p >= end) return {};
    if (*p != ':') {
      if (*p == ' ' || *p == '\t') return fail(400, "whitespace before the colon of a header field");
      if (*p == '\r' || *p == '\n') return fail(400, "header field without a colon");
      return fail(400, "invalid character in header field name");
    }
    if (p == name_start) return fail(400, "empty header field name");
    std::string_view name(name_start, size_t(p - name_start));
    ++p;
    while (p < end && (*p == ' ' || *p == '\t')) ++p;
    const char* value_start = p;
    p = scan::skip_value_chars(p, end);
    if (p + 1 >= end) return {};
    if (*p == '\n') return fail(400, "line not ended by CRLF");
    if (*p != '\r') return fail(400, "invalid character in header field value");
    if (p[1] != '\n') return fail(400, "CR without LF");
    const char* value_end = p;
    while (value_end > value_start && (value_end[-1] == ' ' || value_end[-1] == '\t')) --value_end;
    std::string_view value(value_start, size_t(value_end - value_start));
    p += 2;
    out.headers[out.header_count++] = {name, value};

    if (field == Field::other) {  // by length first: most fields are none of these
      if (name.size() == 4 && token_is(name, "host")) field = Field::host;
      else if (name.size() == 10 && token_is(name, "connection")) field = Field::connection;
    }
    if (field == Field::host) {
      if (++host_fields > 1) return fail(400, "more than one Host field");
      if (!scan::all_of(value, scan::skip_host_chars)) return fail(400, "malformed Host field");
      if (!target_host) out.host = value;
      out.has_host = true;
      continue;
    }
    if (field == Field::connection) {
      note_connection(value, connection);
      continue;
    }
    switch (name.size()) {
      case 5:
        if (token_is(name, "range")) note(out.range, value);
        break;
      case 8:
        if (token_is(name, "if-match")) note(out.if_match, value);
        else if (token_is(name, "if-range")) note(out.if_range, value);
        break;
      case 13:
        if (token_is(name, "if-none-match")) note(out.if_none_match, value);
        break;
      case 15:
        if (token_is(name, "accept-encoding")) note(out.accept_encoding, value);
        break;
      case 19:
        if (token_is(name, "if-unmodified-since")) note(out.if_unmodified_since, value);
        break;
      case 14:
        if (token_is(name, "content-length")) {
          if (out.has_content_length) return fail(400, "repeated Content-Length");
          if (value.empty() || value.size() > 18) return fail(400, "malformed Content-Length");
          uint64_t n = 0;
          for (char c : value) {
            if (c < '0' || c > '9') return fail(400, "malformed Content-Length");
            n = n * 10 + uint64_t(c - '0');
          }
          out.has_content_length = true;
          out.content_length = n;
        }
        break;
      case 17:
        if (token_is(name, "transfer-encoding"))
          return fail(400, "Transfer-Encoding in a request is not accepted");
        if (token_is(name, "if-modified-since")) note(out.if_modified_since, value);
        break;
      default: break;
    }
  }
  if (out.version_minor >= 1 && host_fields == 0) return fail(400, "missing Host field");
  // HTTP/1.1 persists unless a close is asked for; 1.0 only when keep-alive is.
  out.keep_alive = !connection.close && (out.version_minor >= 1 || connection.keep_alive);
  consumed = size_t(p - begin);
  return {ParseStatus::complete, 0, 0, {}};
}

ParseResult RequestParser::parse_head(std::string_view head, bool line_in_out,
                                      Request& out) const noexcept {
  size_t eol = head.find("\r\n");
  // `out` is shared by every connection of a loop: the request line is parsed again unless
  // it was parsed into `out` during this very call.
  if (!line_in_out) {
    ParseResult r = parse_request_line(head.substr(0, eol), out);
    if (r.status == ParseStatus::error) return r;
  }
  size_t consumed = 0;
  ParseResult r = parse_fields(head.data() + eol + 2, head.data() + head.size(), out, consumed);
  if (r.status == ParseStatus::need_more) return fail(400, "malformed header block");  // cannot happen
  return r;
}

// One pass over a request that arrived whole (the common case): it returns only
// "complete", and only where the line scanner would return the same; anything else (an
// error, a limit, a partial request) is left to the line scanner to judge.
bool RequestParser::parse_fast(std::string_view input, Request& out, size_t& consumed) const noexcept {
  const char* p = input.data();
  const char* end = p + input.size();
  size_t empties = 0;
  while (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
    if (++empties > limits_.max_empty_lines) return false;
    p += 2;
  }
  const char* head = p;
  const char* after_line = fast_request_line(p, end, limits_.max_request_line, out);
  if (!after_line) {
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', size_t(end - p)));
    if (!lf || lf == p || lf[-1] != '\r') return false;
    size_t line_len = size_t(lf - 1 - p);
    if (line_len > limits_.max_request_line) return false;
    if (parse_request_line(std::string_view(p, line_len), out).status != ParseStatus::complete)
      return false;
    after_line = lf + 1;
  }
  size_t fields = 0;
  if (parse_fields(after_line, end, out, fields).status != ParseStatus::complete) return false;
  size_t head_size = size_t(after_line - head) + fields;
  if (head_size > limits_.max_head_bytes) return false;
  consumed = size_t(head - input.data()) + head_size;
  return true;
}

}  // namespace netloop::http
