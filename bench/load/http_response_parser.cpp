// HttpResponseParser: the state machine; lines found with memchr, bodies skipped by count.
#include "http_response_parser.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace netloop::load {
namespace {

constexpr size_t kMaxSizeDigits = 15;    // chunk sizes below 2^60
constexpr size_t kMaxLengthDigits = 18;  // Content-Length below 10^18

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view lower_b) noexcept {
  if (a.size() != lower_b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower_b[i]) return false;
  return true;
}

bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 9110 tchar: the characters of a header name.
bool is_tchar(char ch) noexcept {
  auto c = static_cast<unsigned char>(ch);
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Calls fn(token) for each comma-separated element of a header value, trimmed, empty
// ones skipped.
template <typename Fn>
void for_each_token(std::string_view value, Fn fn) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view token = trim(value.substr(0, comma));
    if (!token.empty()) fn(token);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

}  // namespace

void HttpResponseParser::start_response() noexcept {
  state_ = State::status_line;
  chunk_end_cr_ = false;
  line_cr_ = false;
  saw_anything_ = false;
  keep_alive_ = true;
  close_token_ = keep_alive_token_ = false;
  have_length_ = have_te_ = te_chunked_ = false;
  minor_version_ = 1;
  status_ = 0;
  content_length_ = remaining_ = body_bytes_ = 0;
  head_bytes_ = line_len_ = 0;
}

void HttpResponseParser::reset() noexcept {
  start_response();
  error_ = "";
}

bool HttpResponseParser::in_progress() const noexcept {
  if (state_ == State::done || state_ == State::failed) return false;
  return state_ != State::status_line || saw_anything_;
}

HttpResponseParser::Result HttpResponseParser::fail(const char* why, size_t consumed) noexcept {
  state_ = State::failed;
  error_ = why;
  return {Status::error, consumed};
}

HttpResponseParser::Result HttpResponseParser::parse(const char* data, size_t n) noexcept {
  if (state_ == State::failed) return {Status::error, 0};
  if (state_ == State::done) start_response();
  const char* p = data;
  const char* const end = data + n;
  while (p < end) {
    switch (state_) {
      case State::status_line:
      case State::header_line:
      case State::chunk_size:
      case State::trailer_line: {
        saw_anything_ = true;
        const char* lf = static_cast<const char*>(std::memchr(p, '\n', size_t(end - p)));
        const size_t piece = size_t((lf ? lf : end) - p);
        if (state_ != State::chunk_size) {
          head_bytes_ += piece + (lf ? 1 : 0);
          if (head_bytes_ > kMaxHead)
            return fail(state_ == State::trailer_line ? "the trailers exceed 64 KiB"
                                                      : "the response head exceeds 64 KiB",
                        size_t(p - data));
        }
        if (!lf || line_len_ > 0) {
          // Keep what fits of the line; a later call (or this one) completes it.
          if (line_len_ < kKeepLine) {
            size_t take = std::min(piece, kKeepLine - line_len_);
            std::memcpy(line_ + line_len_, p, take);
          }
          if (piece > 0) line_cr_ = p[piece - 1] == '\r';  // the line's last byte so far
          line_len_ += piece;
          if (!lf) {
            if (state_ == State::chunk_size && line_len_ > kKeepLine)
              return fail("a chunk-size line is longer than 256 bytes", size_t(end - data));
            p = end;
            break;
          }
        }
        const char* line;
        size_t len;
        if (line_len_ > 0) {
          line = line_;
          len = line_len_ - (line_cr_ ? 1 : 0);
          line_cr_ = false;
        } else {
          line = p;
          len = piece - ((piece > 0 && p[piece - 1] == '\r') ? 1 : 0);
        }
        line_len_ = 0;
        p = lf + 1;
        if (!on_line(line, len)) return {Status::error, size_t(p - data)};
        if (state_ == State::done) return {Status::done, size_t(p - data)};
        break;
      }
      case State::body_length:
      case State::chunk_data: {
        const uint64_t take = std::min<uint64_t>(remaining_, uint64_t(end - p));
        p += take;
        remaining_ -= take;
        body_bytes_ += take;
        if (remaining_ == 0) {
          if (state_ == State::body_length) {
            state_ = State::done;
            return {Status::done, size_t(p - data)};
          }
          state_ = State::chunk_end;
        }
        break;
      }
      case State::chunk_end:
        if (*p == '\r' && !chunk_end_cr_) {
          chunk_end_cr_ = true;
          ++p;
        } else if (*p == '\n') {
          chunk_end_cr_ = false;
          state_ = State::chunk_size;
          ++p;
        } else {
          return fail("a chunk's data is longer than its chunk-size", size_t(p - data));
        }
        break;
      case State::body_close:
        body_bytes_ += uint64_t(end - p);
        p = end;
        break;
      case State::done:
      case State::failed:
        return {Status::error, size_t(p - data)};  // not reached: both return above
    }
  }
  return {Status::need_more, n};
}

HttpResponseParser::Status HttpResponseParser::finish() noexcept {
  switch (state_) {
    case State::failed:
      return Status::error;
    case State::done:
      return Status::need_more;
    case State::body_close:
      state_ = State::done;
      return Status::done;
    case State::status_line:
      if (!saw_anything_) return Status::need_more;
      [[fallthrough]];
    default:
      fail("the connection ended in the middle of a response", 0);
      return Status::error;
  }
}

// `line` holds min(len, kKeepLine) bytes of a line `len` bytes long: everything decided
// here looks at no more than that, so a line cut by a read boundary parses exactly as
// the same line in one piece.
bool HttpResponseParser::on_line(const char* line, size_t len) noexcept {
  switch (state_) {
    case State::status_line:
      return status_line(line, len);
    case State::header_line:
      if (len == 0) return end_of_head();
      return header_line(line, len);
    case State::chunk_size:
      return chunk_size_line(line, len);
    case State::trailer_line:
      if (len == 0) {
        state_ = State::done;
        return true;
      }
      return header_line(line, len);
    default:
      return true;
  }
}

bool HttpResponseParser::status_line(const char* line, size_t len) noexcept {
  // "HTTP/1.1 200" then the end of the line or a space and a reason phrase.
  if (len < 12 || std::memcmp(line, "HTTP/", 5) != 0) {
    fail("malformed status line", 0);
    return false;
  }
  if (line[5] != '1' || line[6] != '.' || (line[7] != '0' && line[7] != '1')) {
    fail("unsupported HTTP version (expected HTTP/1.0 or HTTP/1.1)", 0);
    return false;
  }
  minor_version_ = line[7] - '0';
  const char* code = line + 9;
  if (line[8] != ' ' || code[0] < '1' || code[0] > '5' || code[1] < '0' || code[1] > '9' ||
      code[2] < '0' || code[2] > '9' || (len > 12 && line[12] != ' ')) {
    fail("malformed status line", 0);
    return false;
  }
  status_ = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  state_ = State::header_line;
  return true;
}

bool HttpResponseParser::header_line(const char* line, size_t len) noexcept {
  if (is_space(line[0])) {
    fail("obsolete header line folding", 0);
    return false;
  }
  const size_t kept = std::min(len, kKeepLine);
  const char* colon = static_cast<const char*>(std::memchr(line, ':', kept));
  if (colon == nullptr) {
    fail(len > kKeepLine ? "a header name is longer than 256 bytes" : "a header line without a colon", 0);
    return false;
  }
  std::string_view name(line, size_t(colon - line));
  if (name.empty() || !std::all_of(name.begin(), name.end(), is_tchar)) {
    fail("malformed header name", 0);
    return false;
  }
  if (state_ == State::trailer_line) return true;  // trailers change nothing here

  const bool is_length = iequals(name, "content-length");
  const bool is_te = !is_length && iequals(name, "transfer-encoding");
  const bool is_connection = !is_length && !is_te && iequals(name, "connection");
  if (!is_length && !is_te && !is_connection) return true;
  if (len > kKeepLine) {
    fail(is_length ? "a Content-Length header is longer than 256 bytes"
         : is_te   ? "a Transfer-Encoding header is longer than 256 bytes"
                   : "a Connection header is longer than 256 bytes",
         0);
    return false;
  }
  std::string_view value = trim(std::string_view(colon + 1, size_t(line + len - colon - 1)));

  if (is_length) {
    if (value.empty() || value.size() > kMaxLengthDigits ||
        !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      fail("malformed Content-Length", 0);
      return false;
    }
    uint64_t v = 0;
    for (char c : value) v = v * 10 + uint64_t(c - '0');
    if (have_length_ && v != content_length_) {
      fail("two different Content-Length values", 0);
      return false;
    }
    have_length_ = true;
    content_length_ = v;
  } else if (is_te) {
    bool any = false;
    for_each_token(value, [&](std::string_view token) {
      te_chunked_ = iequals(token, "chunked");
      any = true;
    });
    if (!any) {
      fail("an empty Transfer-Encoding", 0);
      return false;
    }
    have_te_ = true;
  } else {
    for_each_token(value, [&](std::string_view token) {
      if (iequals(token, "close")) close_token_ = true;
      else if (iequals(token, "keep-alive")) keep_alive_token_ = true;
    });
  }
  return true;
}

bool HttpResponseParser::end_of_head() noexcept {
  if (status_ < 200) {
    if (status_ == 101) {
      fail("101 Switching Protocols: nothing here upgrades", 0);
      return false;
    }
    // Interim (100 Continue, 103 Early Hints): the final response follows.
    start_response();
    saw_anything_ = true;
    return true;
  }
  keep_alive_ = minor_version_ == 1 ? !close_token_ : (keep_alive_token_ && !close_token_);
  if (status_ == 204 || status_ == 304) {
    state_ = State::done;
    return true;
  }
  if (have_te_ && have_length_) {
    fail("both Transfer-Encoding and Content-Length", 0);
    return false;
  }
  if (have_te_ && te_chunked_) {
    state_ = State::chunk_size;
  } else if (have_length_ && !have_te_) {
    remaining_ = content_length_;
    state_ = remaining_ == 0 ? State::done : State::body_length;
  } else {
    state_ = State::body_close;
    keep_alive_ = false;
  }
  return true;
}

bool HttpResponseParser::chunk_size_line(const char* line, size_t len) noexcept {
  if (len > kKeepLine) {
    fail("a chunk-size line is longer than 256 bytes", 0);
    return false;
  }
  size_t i = 0;
  uint64_t size = 0;
  for (; i < len && hex_value(line[i]) >= 0; ++i) {
    if (i == kMaxSizeDigits) {
      fail("a chunk size of more than 15 hex digits", 0);
      return false;
    }
    size = size * 16 + uint64_t(hex_value(line[i]));
  }
  if (i == 0) {
    fail("malformed chunk-size line", 0);
    return false;
  }
  while (i < len && is_space(line[i])) ++i;
  if (i < len && line[i] != ';') {
    fail("malformed chunk-size line", 0);
    return false;
  }
  if (size == 0) {
    state_ = State::trailer_line;
    head_bytes_ = 0;
  } else {
    remaining_ = size;
    state_ = State::chunk_data;
  }
  return true;
}

}  // namespace netloop::load
