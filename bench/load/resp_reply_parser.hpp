// RespReplyParser: an incremental parser of Redis replies (RESP2) for the load
// generator; no I/O, no allocation.
//
// A push parser like HttpResponseParser: each call takes the bytes that follow the
// previous call's and consumes all of them (need_more) or exactly up to the end of one
// reply (done); bulk strings are skipped by count, never buffered. Replies: simple strings
// (+OK), errors (-ERR ...), integers (:1), bulk strings ($3 foo, $-1 the null bulk) and
// arrays (*2 ..., *-1 the null array), nested up to kMaxDepth. Lines end in CRLF (RESP
// has no bare-LF form: a lone CR or LF inside a line is an error).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace netloop::load {

class RespReplyParser {
 public:
  enum class Status : uint8_t { need_more, done, error };
  struct Result {
    Status status = Status::need_more;
    size_t consumed = 0;  // need_more: every byte given; done: the reply's last bytes
  };
  // What a whole reply is: the type of its top level.
  enum class Type : uint8_t { simple, error, integer, bulk, null, array };
  static constexpr size_t kTypes = 6;

  static constexpr size_t kMaxDepth = 32;                  // arrays inside arrays
  static constexpr int64_t kMaxBulk = 512 * 1024 * 1024;   // Redis's proto-max-bulk-len
  static constexpr size_t kMaxLine = 64 * 1024;            // a simple string or error
  static constexpr size_t kKeepText = 64;  // bytes kept of an error reply's text

  // Parses the bytes that follow those of the previous call. After done, the next call
  // starts a new reply; after error, every call answers error until reset().
  Result parse(const char* data, size_t n) noexcept;
  void reset() noexcept;

  // The reply that ended with done (valid until the next call).
  Type type() const noexcept { return type_; }
  // An error reply's text (its first kKeepText bytes), e.g. "ERR unknown command".
  std::string_view error_text() const noexcept { return {text_, text_len_}; }
  // Part of a reply has been seen and it has not ended yet.
  bool in_progress() const noexcept {
    return started_ && state_ != State::done && state_ != State::failed;
  }
  const char* error() const noexcept { return error_; }

  static const char* name(Type t) noexcept;

 private:
  enum class State : uint8_t { type_byte, line, bulk_data, bulk_cr, bulk_lf, done, failed };

  Result fail(const char* why, size_t consumed) noexcept;
  bool on_line() noexcept;   // the line of the current element is complete
  void element_done() noexcept;

  State state_ = State::type_byte;
  char kind_ = 0;          // the current element's type byte
  bool started_ = false;   // a byte of this reply has been seen
  bool line_cr_ = false;   // line: its CR has been seen, the LF must follow
  Type type_ = Type::simple;
  size_t depth_ = 0;       // open arrays
  size_t line_len_ = 0;    // bytes of the current line so far
  int64_t remaining_ = 0;  // bulk_data: bytes still to come
  int64_t left_[kMaxDepth] = {};  // elements still to come in each open array
  const char* error_ = "";
  size_t text_len_ = 0;
  char text_[kKeepText];      // an error reply's text
  char number_[24];           // the digits of an integer, bulk or array length line
};

}  // namespace netloop::load
