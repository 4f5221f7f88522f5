// What an HTTP server may be told: its root, its limits and its timeouts. Every default
// is meant to be safe on the open internet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "http/request_parser.hpp"
#include "netloop/clock.hpp"
#include "netloop/rate_limit.hpp"

namespace netloop::http {

struct HttpOptions {
  std::string root;                  // directory served; empty: the built-in page
  std::string index = "index.html";  // served for a directory's own path
  ParserLimits limits;               // request line (414) and head size (431)
  // From the first byte of a request until its head (and any body) has arrived; past it a
  // 408 and close (slowloris).
  Duration header_timeout = seconds(10);
  // How long a keep-alive connection may sit idle between requests.
  Duration keepalive_timeout = seconds(30);
  // When the server drains, a keep-alive connection idle between requests gets this long
  // (at most keepalive_timeout) for one more request, answered with Connection: close,
  // before it is closed: closing it at once races with the request a busy client (wrk,
  // a proxy's pool) is already sending, which would then see its connection cut.
  Duration drain_idle_grace = seconds(1);
  // A request body (we serve only GET and HEAD) up to this size is read and discarded so
  // the connection stays in step; past it a 413 and close.
  uint64_t max_discarded_body = 64 * 1024;
  // Files up to this size are kept in memory and served with one write; larger ones go
  // out with sendfile. Cached files are checked against the disk at most once per
  // `cache_revalidate`.
  size_t cache_file_max = 64 * 1024;
  size_t cache_max_bytes = 32 * 1024 * 1024;
  Duration cache_revalidate = seconds(1);
  // One log line per response (peer, request line, status, bytes) at level info.
  bool access_log = false;
  // Paths with a segment starting with '.' (.git, .env, .htpasswd) are 404s, but for the
  // /.well-known/ directory at the root (RFC 8615); true serves them like any file.
  bool dotfiles = false;
  // For "app.js", serve "app.js.br" or "app.js.gz" when one exists, is not older than
  // app.js, and the client's Accept-Encoding takes it. On by default: a sibling is there
  // only because the site's author put it there, and every browser asks for gzip and br.
  bool precompressed = true;
  // Added as "Cache-Control: VALUE" to file responses (200, 206, 304) when not empty.
  std::string cache_control;
  // Requests per client (RateLimiter's key: an IPv4 address, an IPv6 /64) past this
  // limit get a 429 with Retry-After and the connection stays open. Shared by the
  // responders of every loop. Null: no limit.
  std::shared_ptr<RateLimiter> rate_limiter;
};

}  // namespace netloop::http
