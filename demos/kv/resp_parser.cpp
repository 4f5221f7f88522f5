// RespParser: arrays of bulk strings and inline commands, framed incrementally.
#include "kv/resp_parser.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace netloop::demo::kv {
namespace {

// A "*N" or "$N" line holds at most a sign and 19 digits; Redis waits up to 64 KiB for
// its CR, we give up much sooner (nothing longer can be valid).
constexpr size_t kMaxNumberLine = 24;

enum class Line : uint8_t { found, need_more, too_long };

// Looks for the CR ending the line that starts at `from`.
Line find_cr(std::string_view in, size_t from, size_t& cr) {
  size_t limit = std::min(in.size(), from + kMaxNumberLine);
  if (from < limit) {
    const void* p = std::memchr(in.data() + from, '\r', limit - from);
    if (p) {
      cr = size_t(static_cast<const char*>(p) - in.data());
      return Line::found;
    }
  }
  return in.size() >= from + kMaxNumberLine ? Line::too_long : Line::need_more;
}

}  // namespace

bool parse_integer(std::string_view s, int64_t& out) noexcept {
  size_t i = 0;
  bool negative = !s.empty() && s[0] == '-';
  if (negative) i = 1;
  if (i == s.size()) return false;
  if (s[i] == '0') {
    if (s.size() != 1) return false;
    out = 0;
    return true;
  }
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    unsigned d = unsigned(s[i]) - '0';
    if (d > 9) return false;
    if (v > (uint64_t(INT64_MAX) - d) / 10) return false;
    v = v * 10 + d;
  }
  out = negative ? -int64_t(v) : int64_t(v);
  return true;
}

namespace {

bool is_space(char c) {  // isspace() in the C locale
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool ends_word(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

RespParser::RespParser(const KvOptions& limits)
    : max_bulk_(limits.max_bulk),
      max_args_(limits.max_args),
      max_inline_(limits.max_inline),
      max_command_(limits.max_command) {}

void RespParser::reset() noexcept {
  partial_ = false;
  pos_ = 0;
  expected_ = -1;
  bulk_len_ = -1;
  spans_.clear();
}

RespResult RespParser::fail(std::string_view message) {
  reset();
  args_.clear();
  return {RespStatus::error, 0, message};
}

RespResult RespParser::parse(std::string_view in) {
  args_.clear();
  if (in.empty()) return {};
  RespResult r = in[0] == '*' ? parse_array(in) : parse_inline(in);
  partial_ = r.status == RespStatus::need_more;
  return r;
}

RespResult RespParser::parse_array(std::string_view in) {
  size_t cr = 0;
  if (expected_ < 0) {
    switch (find_cr(in, 1, cr)) {
      case Line::need_more: return {};
      case Line::too_long: return fail("too big mbulk count string");
      case Line::found: break;
    }
    if (cr + 1 >= in.size()) return {};
    int64_t n = 0;
    if (in[cr + 1] != '\n' || !parse_integer(in.substr(1, cr - 1), n) ||
        (n > 0 && uint64_t(n) > max_args_))
      return fail("invalid multibulk length");
    pos_ = cr + 2;
    if (n <= 0) return complete(in);  // "*0", "*-1": nothing to run (Redis ignores them)
    expected_ = n;
  }
  while (spans_.size() < size_t(expected_)) {
    if (bulk_len_ < 0) {
      if (pos_ >= in.size()) return {};
      if (in[pos_] != '$') {
        unsigned char c = static_cast<unsigned char>(in[pos_]);
        if (c >= 0x20 && c < 0x7f)
          std::snprintf(message_, sizeof message_, "expected '$', got '%c'", c);
        else
          std::snprintf(message_, sizeof message_, "expected '$', got byte 0x%02x", c);
        return fail(message_);
      }
      switch (find_cr(in, pos_ + 1, cr)) {
        case Line::need_more: return {};
        case Line::too_long: return fail("too big bulk count string");
        case Line::found: break;
      }
      if (cr + 1 >= in.size()) return {};
      int64_t n = 0;
      if (in[cr + 1] != '\n' || !parse_integer(in.substr(pos_ + 1, cr - pos_ - 1), n) || n < 0 ||
          uint64_t(n) > max_bulk_)
        return fail("invalid bulk length");
      if (cr + 2 + uint64_t(n) + 2 > max_command_) return fail("request too large");
      bulk_len_ = n;
      pos_ = cr + 2;
    }
    size_t len = size_t(bulk_len_);
    if (in.size() - pos_ < len + 2) return {};
    if (in[pos_ + len] != '\r' || in[pos_ + len + 1] != '\n')
      return fail("expected CRLF after a bulk string");
    spans_.emplace_back(pos_, len);
    pos_ += len + 2;
    bulk_len_ = -1;
  }
  return complete(in);
}

RespResult RespParser::complete(std::string_view in) {
  args_.reserve(spans_.size());
  for (auto [off, len] : spans_) args_.emplace_back(in.data() + off, len);
  RespResult r{RespStatus::complete, pos_, {}};
  reset();
  // A command with very many arguments does not leave that much memory behind.
  if (spans_.capacity() > 4096) std::vector<std::pair<size_t, size_t>>().swap(spans_);
  return r;
}

RespResult RespParser::parse_inline(std::string_view in) {
  // pos_: bytes already searched for the newline.
  size_t limit = std::min(in.size(), max_inline_ + 1);
  const void* nl = pos_ < limit ? std::memchr(in.data() + pos_, '\n', limit - pos_) : nullptr;
  if (!nl) {
    if (in.size() > max_inline_) return fail("too big inline request");
    pos_ = in.size();
    return {};
  }
  size_t end = size_t(static_cast<const char*>(nl) - in.data());
  std::string_view line = in.substr(0, end);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  RespResult r = split_inline(line, end + 1);
  pos_ = 0;
  return r;
}

// Redis's sdssplitargs: words separated by spaces; "double quotes" with \n \r \t \b \a
// \xHH and \<char> escapes, 'single quotes' with \' only; a closing quote must be
// followed by a space or the end. Unquoted words are views into the line; quoted ones
// are decoded into unquoted_, reserved up front so that no view moves.
RespResult RespParser::split_inline(std::string_view line, size_t consumed) {
  bool reserved = false;
  size_t p = 0;
  const size_t n = line.size();
  while (true) {
    while (p < n && is_space(line[p])) ++p;
    if (p == n) break;
    if (args_.size() == max_args_) return fail("too many arguments in inline request");
    size_t start = p;
    while (p < n && !ends_word(line[p]) && line[p] != '"' && line[p] != '\'') ++p;
    if (p == n || ends_word(line[p])) {
      if (p - start > max_bulk_) return fail("invalid bulk length");
      args_.push_back(line.substr(start, p - start));
      continue;
    }
    if (!reserved) {
      unquoted_.clear();
      unquoted_.reserve(n);
      reserved = true;
    }
    // A quote at p: the word is the text before it and the quoted part, which must end
    // the word.
    size_t out = unquoted_.size();
    unquoted_.append(line.substr(start, p - start));
    const bool in_double = line[p++] == '"';
    for (bool done = false; !done; ++p) {
      if (p == n) return fail("unbalanced quotes in request");
      char c = line[p];
      if (in_double && c == '\\' && p + 3 < n && line[p + 1] == 'x' && hex_value(line[p + 2]) >= 0 &&
          hex_value(line[p + 3]) >= 0) {
        unquoted_.push_back(char(hex_value(line[p + 2]) * 16 + hex_value(line[p + 3])));
        p += 3;
      } else if (in_double && c == '\\' && p + 1 < n) {
        ++p;
        switch (line[p]) {
          case 'n': c = '\n'; break;
          case 'r': c = '\r'; break;
          case 't': c = '\t'; break;
          case 'b': c = '\b'; break;
          case 'a': c = '\a'; break;
          default: c = line[p]; break;
        }
        unquoted_.push_back(c);
      } else if (!in_double && c == '\\' && p + 1 < n && line[p + 1] == '\'') {
        ++p;
        unquoted_.push_back('\'');
      } else if (c == (in_double ? '"' : '\'')) {
        if (p + 1 < n && !is_space(line[p + 1])) return fail("unbalanced quotes in request");
        done = true;
      } else {
        unquoted_.push_back(c);
      }
    }
    if (unquoted_.size() - out > max_bulk_) return fail("invalid bulk length");
    args_.push_back(std::string_view(unquoted_).substr(out));
  }
  return {RespStatus::complete, consumed, {}};
}

}  // namespace netloop::demo::kv
