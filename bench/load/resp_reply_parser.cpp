// RespReplyParser: the state machine; an array is a count of elements still to come per
// open level, so nesting costs one integer per level and nothing per element.
#include "resp_reply_parser.hpp"

#include <algorithm>

namespace netloop::load {
namespace {

// Redis's integer rules: an optional '-', digits without leading zeros, within int64.
bool parse_integer(const char* s, size_t n, int64_t& out) noexcept {
  size_t i = 0;
  const bool negative = n > 0 && s[0] == '-';
  if (negative) i = 1;
  if (i == n) return false;
  if (s[i] == '0') {
    if (n != i + 1 || negative) return false;
    out = 0;
    return true;
  }
  uint64_t v = 0;
  const uint64_t limit = negative ? uint64_t(INT64_MAX) + 1 : uint64_t(INT64_MAX);
  for (; i < n; ++i) {
    unsigned d = unsigned(s[i]) - '0';
    if (d > 9) return false;
    if (v > (limit - d) / 10) return false;
    v = v * 10 + d;
  }
  out = negative ? int64_t(0 - v) : int64_t(v);
  return true;
}

}  // namespace

const char* RespReplyParser::name(Type t) noexcept {
  switch (t) {
    case Type::simple: return "simple";
    case Type::error: return "error";
    case Type::integer: return "integer";
    case Type::bulk: return "bulk";
    case Type::null: return "null";
    case Type::array: return "array";
  }
  return "?";
}

void RespReplyParser::reset() noexcept {
  state_ = State::type_byte;
  started_ = false;
  line_cr_ = false;
  depth_ = 0;
  line_len_ = 0;
  text_len_ = 0;
  error_ = "";
}

RespReplyParser::Result RespReplyParser::fail(const char* why, size_t consumed) noexcept {
  state_ = State::failed;
  error_ = why;
  return {Status::error, consumed};
}

RespReplyParser::Result RespReplyParser::parse(const char* data, size_t n) noexcept {
  if (state_ == State::failed) return {Status::error, 0};
  if (state_ == State::done) {
    state_ = State::type_byte;
    started_ = false;
  }
  const char* p = data;
  const char* const end = data + n;
  while (p < end) {
    switch (state_) {
      case State::type_byte: {
        const char c = *p++;
        if (c != '+' && c != '-' && c != ':' && c != '$' && c != '*')
          return fail("not a RESP2 reply (expected +, -, :, $ or * to start an element)",
                      size_t(p - data));
        if (depth_ == 0) {
          started_ = true;
          type_ = c == '+' ? Type::simple : c == '-' ? Type::error
                  : c == ':' ? Type::integer : c == '$' ? Type::bulk : Type::array;
          text_len_ = 0;
        }
        kind_ = c;
        line_len_ = 0;
        line_cr_ = false;
        state_ = State::line;
        break;
      }
      case State::line: {
        // Short lines: "+OK", ":1", "$3". Byte by byte, so a stray CR or LF is caught.
        while (p < end) {
          const char c = *p++;
          if (line_cr_) {
            if (c != '\n') return fail("a CR not followed by LF in a reply line", size_t(p - data));
            line_cr_ = false;
            if (!on_line()) return {Status::error, size_t(p - data)};
            break;
          }
          if (c == '\r') {
            line_cr_ = true;
            continue;
          }
          if (c == '\n') return fail("a reply line ends in LF without CR", size_t(p - data));
          if (kind_ == '+' || kind_ == '-') {
            if (++line_len_ > kMaxLine)
              return fail("a simple string or error reply longer than 64 KiB", size_t(p - data));
            if (kind_ == '-' && depth_ == 0 && text_len_ < kKeepText) text_[text_len_++] = c;
          } else {
            if (line_len_ == sizeof number_)
              return fail("a number in a reply is longer than 24 characters", size_t(p - data));
            number_[line_len_++] = c;
          }
        }
        if (state_ == State::done) return {Status::done, size_t(p - data)};
        break;
      }
      case State::bulk_data: {
        const int64_t take = std::min<int64_t>(remaining_, int64_t(end - p));
        p += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::bulk_cr;
        break;
      }
      case State::bulk_cr:
        if (*p++ != '\r') return fail("a bulk string longer than its length", size_t(p - data));
        state_ = State::bulk_lf;
        break;
      case State::bulk_lf:
        if (*p++ != '\n') return fail("a bulk string not followed by CRLF", size_t(p - data));
        element_done();
        if (state_ == State::done) return {Status::done, size_t(p - data)};
        break;
      case State::done:
      case State::failed:
        return {Status::error, size_t(p - data)};  // not reached: both return above
    }
  }
  return {Status::need_more, n};
}

bool RespReplyParser::on_line() noexcept {
  if (kind_ == '+' || kind_ == '-') {
    element_done();
    return true;
  }
  int64_t v = 0;
  if (!parse_integer(number_, line_len_, v)) {
    fail(kind_ == ':' ? "malformed integer reply"
         : kind_ == '$' ? "malformed bulk string length" : "malformed array length", 0);
    return false;
  }
  if (kind_ == ':') {
    element_done();
    return true;
  }
  if (v < -1) {
    fail(kind_ == '$' ? "a negative bulk string length other than -1"
                      : "a negative array length other than -1", 0);
    return false;
  }
  if (v == -1) {  // the null bulk string or the null array
    if (depth_ == 0) type_ = Type::null;
    element_done();
    return true;
  }
  if (kind_ == '$') {
    if (v > kMaxBulk) {
      fail("a bulk string longer than 512 MiB", 0);
      return false;
    }
    remaining_ = v;
    state_ = v == 0 ? State::bulk_cr : State::bulk_data;
    return true;
  }
  if (v == 0) {
    element_done();
    return true;
  }
  if (depth_ == kMaxDepth) {
    fail("arrays nested more than 32 deep", 0);
    return false;
  }
  left_[depth_++] = v;
  state_ = State::type_byte;
  return true;
}

void RespReplyParser::element_done() noexcept {
  while (depth_ > 0) {
    if (--left_[depth_ - 1] > 0) {
      state_ = State::type_byte;
      return;
    }
    --depth_;  // that array is complete: it is an element of the one around it
  }
  state_ = State::done;
}

}  // namespace netloop::load
