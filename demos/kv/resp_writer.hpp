// RespWriter: RESP2 replies, appended to a reply buffer that the handler sends once per
// batch of pipelined commands. A bulk string of kDirectBulk bytes or more is not copied
// into the buffer: what is buffered goes out, then the value itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "netloop/buffer.hpp"
#include "netloop/protocol.hpp"

namespace netloop::demo::kv {

class RespWriter {
 public:
  static constexpr size_t kDirectBulk = 16 * 1024;

  RespWriter(Buffer& out, Connection& conn) noexcept : out_(out), conn_(conn) {}

  void simple(std::string_view s);  // "+OK\r\n"
  void error(std::string_view s);   // "-" s "\r\n"; s starts with the code: "ERR ..."
  void integer(int64_t n);          // ":3\r\n"
  void bulk(std::string_view s);    // "$5\r\nhello\r\n"
  void null();                      // "$-1\r\n"
  void array(size_t n);             // "*2\r\n", then n replies

  // An error assembled from pieces (client bytes among them): CR and LF in a piece
  // become spaces, so the reply stays one line, as in Redis.
  void error_begin() { out_.append("-", 1); }
  void error_piece(std::string_view s, size_t max = SIZE_MAX);
  void error_end() { out_.append("\r\n", 2); }

  size_t buffered() const noexcept { return out_.size(); }
  // Sends what is buffered (one send) and empties the buffer.
  void flush();

 private:
  void header(char type, int64_t n);

  Buffer& out_;
  Connection& conn_;
};

}  // namespace netloop::demo::kv
