// HttpResponseParser: an incremental parser of HTTP/1.x responses for the load generator;
// no I/O, no allocation, and it keeps nothing of the input between calls but a short
// prefix of a header line cut by a read boundary.
//
// It is a push parser: every call takes the bytes that follow those of the previous call
// and consumes all of them (need_more) or exactly up to the end of one response (done),
// so a caller never holds bytes back for it and bodies are skipped, never buffered.
// Framing follows RFC 9112 section 6 for responses to GET: 1xx responses are interim
// (skipped, except 101, an error: nothing here upgrades), 204 and 304 have no body,
// Transfer-Encoding whose last coding is chunked is chunked, another Transfer-Encoding
// or none at all with no Content-Length runs until the connection closes (finish()), and
// Transfer-Encoding together with Content-Length is an error (response splitting).
// Lines end in CRLF or a bare LF.
#pragma once

#include <cstddef>
#include <cstdint>

namespace netloop::load {

class HttpResponseParser {
 public:
  enum class Status : uint8_t { need_more, done, error };
  struct Result {
    Status status = Status::need_more;
    size_t consumed = 0;  // need_more: every byte given; done: the response's last bytes
  };

  static constexpr size_t kMaxHead = 64 * 1024;  // status line and headers (and trailers)
  static constexpr size_t kKeepLine = 256;  // bytes of a line kept when a read cuts it

  // Parses the bytes that follow those of the previous call. After done, the next call
  // starts a new response; after error, the stream cannot be framed any further and
  // every call answers error again until reset().
  Result parse(const char* data, size_t n) noexcept;
  // The peer ended its stream. done: the response in progress was delimited by the
  // close; need_more: no response was in progress (nothing of one was seen); error: the
  // stream ended inside a response.
  Status finish() noexcept;
  void reset() noexcept;

  // The response that ended with done (valid until the next call).
  int status_code() const noexcept { return status_; }
  // Whether the server keeps the connection open after it: HTTP/1.1 unless
  // "Connection: close", HTTP/1.0 only with "Connection: keep-alive", and never after a
  // body delimited by the close.
  bool keep_alive() const noexcept { return keep_alive_; }
  uint64_t body_bytes() const noexcept { return body_bytes_; }
  // Something of a response has been seen and it has not ended yet.
  bool in_progress() const noexcept;
  // What was wrong, after error (a static string).
  const char* error() const noexcept { return error_; }

 private:
  enum class State : uint8_t {
    status_line,
    header_line,
    body_length,  // Content-Length bytes
    body_close,   // everything until the peer ends its stream
    chunk_size,   // the chunk-size line (with any extensions)
    chunk_data,
    chunk_end,    // the CRLF after a chunk's data
    trailer_line,
    done,
    failed,
  };

  Result fail(const char* why, size_t consumed) noexcept;
  // One whole line (without its LF, and without its CR); false after fail().
  bool on_line(const char* line, size_t len) noexcept;
  bool status_line(const char* line, size_t len) noexcept;
  bool header_line(const char* line, size_t len) noexcept;
  bool end_of_head() noexcept;
  bool chunk_size_line(const char* line, size_t len) noexcept;
  void start_response() noexcept;

  State state_ = State::status_line;
  bool chunk_end_cr_ = false;  // chunk_end: its CR has been seen
  bool line_cr_ = false;       // the last byte seen of a line cut by a read was a CR
  bool saw_anything_ = false;  // some byte of this response has been seen
  bool keep_alive_ = true;
  bool close_token_ = false;      // Connection: close
  bool keep_alive_token_ = false; // Connection: keep-alive
  bool have_length_ = false;
  bool have_te_ = false;
  bool te_chunked_ = false;  // the last transfer coding seen is chunked
  int minor_version_ = 1;
  int status_ = 0;
  uint64_t content_length_ = 0;
  uint64_t remaining_ = 0;   // body_length, chunk_data: bytes still to come
  uint64_t body_bytes_ = 0;
  size_t head_bytes_ = 0;    // bytes of the head (or trailers) so far, against kMaxHead
  size_t line_len_ = 0;      // bytes of the current line seen in earlier calls
  const char* error_ = "";
  char line_[kKeepLine];     // the first bytes of a line cut by a read boundary
};

}  // namespace netloop::load
