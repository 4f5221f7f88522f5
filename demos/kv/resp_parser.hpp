// RespParser: an incremental parser of Redis requests (RESP2), no I/O.
//
// A request is either an array of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", as
// redis-cli and redis-benchmark send them) or an inline command (a line of words, as
// typed into telnet: "GET k\r\n", with Redis's quoting rules). Values are binary-safe.
//
// parse() is given the bytes from the start of the current request: on need_more the
// caller keeps them and calls again with the same bytes and more appended (the parser
// resumes where it stopped, it never re-reads what it already framed). On complete,
// args() are views into those bytes (or, for quoted inline words, into the parser's own
// scratch) valid until the bytes change or parse() is called again; `consumed` bytes
// belong to the request. A request with no arguments ("*0\r\n", a blank line) completes
// with args() empty: Redis ignores those. On error, `error` is the text to send after
// "-ERR Protocol error: " (Redis's wording); the stream cannot be framed past it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kv/kv.hpp"

namespace netloop::demo::kv {

// Redis's integer rules (string2ll): an optional '-', digits without leading zeros ("0"
// alone is fine, "-0" is not), no spaces or '+', within int64.
bool parse_integer(std::string_view s, int64_t& out) noexcept;

enum class RespStatus : uint8_t { need_more, complete, error };

struct RespResult {
  RespStatus status = RespStatus::need_more;
  size_t consumed = 0;     // complete: bytes of the request
  std::string_view error;  // error: what is wrong (valid until the next parse())
};

class RespParser {
 public:
  explicit RespParser(const KvOptions& limits = {});

  RespResult parse(std::string_view in);
  std::span<const std::string_view> args() const noexcept { return args_; }
  // Part of a request has been seen (need_more was returned for it).
  bool in_progress() const noexcept { return partial_; }
  // Forgets a request in progress (the next parse() starts a new one).
  void reset() noexcept;

 private:
  RespResult parse_array(std::string_view in);
  RespResult parse_inline(std::string_view in);
  RespResult split_inline(std::string_view line, size_t consumed);
  RespResult complete(std::string_view in);
  RespResult fail(std::string_view message);

  size_t max_bulk_;
  size_t max_args_;
  size_t max_inline_;
  size_t max_command_;
  bool partial_ = false;    // need_more was the last answer
  size_t pos_ = 0;          // bytes of the current request framed (array) or searched (inline)
  int64_t expected_ = -1;   // array: arguments announced (-1: the "*N" line not read yet)
  int64_t bulk_len_ = -1;   // array: length of the argument being read (-1: "$N" not read)
  std::vector<std::pair<size_t, size_t>> spans_;  // offset and length of each argument
  std::vector<std::string_view> args_;
  std::string unquoted_;    // inline words with quotes or escapes, decoded
  char message_[48] = {};   // room for a message naming a byte
};

}  // namespace netloop::demo::kv
