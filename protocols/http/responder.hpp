// Responder: the per-loop half of an HTTP service, what HttpHandler answers through.
// HttpHandler frames requests (parsing, bodies, pipelining, keep-alive, timeouts,
// backpressure); a Responder decides what each request gets. The static-file responder
// and the metrics endpoint are both Responders, so both get the same framing rules.
// One per loop, shared by that loop's connections; not thread-safe by design.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_date.hpp"
#include "http/http_options.hpp"
#include "http/request_parser.hpp"
#include "netloop/buffer.hpp"
#include "netloop/counter.hpp"
#include "netloop/fd.hpp"
#include "netloop/protocol.hpp"

namespace netloop::http {

struct HttpStats {
  Counter requests;      // complete request heads parsed
  Counter responses[6];  // by class: [2] = 2xx ... [5] = 5xx
  Counter bad_requests;  // rejected by the parser (400, 414, 431, 505)
  Counter timeouts;      // 408s and idle keep-alive closes
  Counter files_sent;    // responses that went out with sendfile
  Counter cache_hits;
  Counter refused;       // 503s: past --max-connections (or the endpoint's own cap)
  Counter not_modified;  // 304s
  Counter partial;       // 206s
  Counter rate_limited;  // 429s: past the client's request rate (HttpOptions::rate_limiter)
};

class Responder : public std::enable_shared_from_this<Responder> {
 public:
  virtual ~Responder() = default;

  // One part of a multipart/byteranges body sent from disk: `text` (the part's head, with
  // the delimiter before it), then `length` bytes of the reply's file from `offset` (none
  // when the part was small enough to be read into `text`).
  struct FilePart {
    std::string text;
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  // A multipart/byteranges body sent from disk: each part, then `tail`.
  struct Multipart {
    std::vector<FilePart> parts;
    std::string tail;
  };
  // What respond() asks the caller to send after `out`.
  struct Reply {
    uint16_t status = 0;
    bool close = false;  // the response says Connection: close
    // Then `file_length` bytes of it from `file_offset` (sendfile), or `multipart`; shared
    // with the file cache when it keeps the descriptor open (no dup per response).
    SharedFd file;
    uint64_t file_offset = 0;
    uint64_t file_length = 0;
    std::unique_ptr<Multipart> multipart;  // rare: kept out of the common reply's way
    uint64_t body_bytes() const noexcept;  // sent after `out`, for the access log
  };

  // Appends the response to `req` to `out` (the head, and the body when it is in memory).
  virtual Reply respond(const Request& req, TimePoint now, Buffer& out) = 0;
  // Appends an error response (a short text body naming the problem); `extra_fields`
  // (whole lines, CRLF-ended) go into its head.
  void write_error(uint16_t status, std::string_view detail, bool head, bool keep_alive,
                   uint8_t version_minor, Buffer& out, std::string_view extra_fields = {});

  // A 429 for a client past its request rate: Retry-After `seconds`, the connection kept.
  Reply too_many_requests(const Request& req, uint32_t seconds, Buffer& out);

  // Makes one HttpHandler per connection, all answering through this responder.
  StreamHandlerFactory factory();

  const HttpOptions& options() const noexcept { return options_; }
  HttpStats& stats() noexcept { return stats_; }

  // Per-loop scratch shared by the handlers: the request being handled and the output
  // being assembled. Both are used only within one on_data call.
  Request& request() noexcept { return request_; }
  Buffer& staging() noexcept { return staging_; }

 protected:
  explicit Responder(const HttpOptions& options);
  // The status line, Server, Date and the connection's fate; counts the response.
  void write_head(uint16_t status, bool keep_alive, uint8_t version_minor, Buffer& out);
  Reply fail(uint16_t status, std::string_view detail, const Request& req, Buffer& out,
             std::string_view extra_fields = {});

  HttpOptions options_;
  DateCache date_;
  HttpStats stats_;
  Request request_;
  Buffer staging_;
};

}  // namespace netloop::http
