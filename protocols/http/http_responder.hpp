// HttpResponder: turns a parsed request into a response: the served root (or the
// built-in page), the small-file cache, status codes and headers. One per loop, shared by
// that loop's connection handlers; not thread-safe by design (shared-nothing loops).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/file_cache.hpp"
#include "http/http_date.hpp"
#include "http/http_options.hpp"
#include "http/request_parser.hpp"
#include "http/root_directory.hpp"
#include "netloop/buffer.hpp"
#include "netloop/counter.hpp"
#include "netloop/fd.hpp"
#include "netloop/protocol.hpp"
#include "netloop/result.hpp"

namespace netloop::http {

struct HttpStats {
  Counter requests;      // complete request heads parsed
  Counter responses[6];  // by class: [2] = 2xx ... [5] = 5xx
  Counter bad_requests;  // rejected by the parser (400, 414, 431, 505)
  Counter timeouts;      // 408s and idle keep-alive closes
  Counter files_sent;    // responses that went out with sendfile
  Counter cache_hits;
  Counter refused;       // 503s: past --max-connections
};

class HttpResponder : public std::enable_shared_from_this<HttpResponder> {
 public:
  // Fails when the root cannot be opened (the error names the cause).
  static Result<std::shared_ptr<HttpResponder>> create(const HttpOptions& options);

  // Makes one HttpHandler per connection, all answering through this responder.
  StreamHandlerFactory factory();

  // What respond() asks the caller to send after `out`: a file, for large ones.
  struct Reply {
    uint16_t status = 0;
    Fd file;
    uint64_t file_length = 0;
    bool close = false;  // the response says Connection: close
  };

  // Appends the response to `req` to `out`: headers, and the body when it is in memory.
  Reply respond(const Request& req, TimePoint now, Buffer& out);
  // Appends an error response (a short text body naming the problem).
  void write_error(uint16_t status, std::string_view detail, bool head, bool keep_alive,
                   uint8_t version_minor, Buffer& out);

  const HttpOptions& options() const noexcept { return options_; }
  HttpStats& stats() noexcept { return stats_; }
  const FileCache& cache() const noexcept { return cache_; }
  // The served root, resolved ("" for the built-in page).
  std::string root_path() const { return root_ ? root_->path() : std::string(); }

  // Per-loop scratch shared by the handlers: the request being handled and the output
  // being assembled. Both are used only within one on_data call.
  Request& request() noexcept { return request_; }
  Buffer& staging() noexcept { return staging_; }

 private:
  explicit HttpResponder(const HttpOptions& options, std::optional<RootDirectory> root);
  void write_head(uint16_t status, bool keep_alive, uint8_t version_minor, Buffer& out);
  Reply serve_cached(CachedFile& f, const Request& req, TimePoint now, Buffer& out);
  Reply redirect_to_directory(const Request& req, Buffer& out);
  Reply fail(uint16_t status, std::string_view detail, const Request& req, Buffer& out);

  HttpOptions options_;
  std::optional<RootDirectory> root_;
  FileCache cache_;
  DateCache date_;
  HttpStats stats_;
  std::string builtin_headers_;
  Request request_;
  Buffer staging_;
  std::string path_;     // the normalized request path
  std::string key_;      // its cache key
  std::string scratch_;  // for RootDirectory::open_file
};

}  // namespace netloop::http
