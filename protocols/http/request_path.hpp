// Request paths to file-system paths: percent-decoding once and resolving dot segments,
// so that no request can name anything above the served root.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace netloop::http {

struct PathResult {
  uint16_t http_status = 0;  // 0 when `out` holds the path; 400 otherwise
  std::string_view reason;   // why not
  bool directory = false;    // the request path ended in '/' (or named the root)
};

// `raw` is the request's path as sent (starting with '/'). On success `out` is the path
// relative to the root: segments joined by '/', no leading '/', no empty, "." or ".."
// segment, "" for the root itself. Refused with 400: malformed percent-encoding, an
// encoded NUL, '/' or '\\', a decoded control character, and ".." climbing above the
// root. `out` keeps its capacity between calls (no allocation once warm).
PathResult normalize_path(std::string_view raw, std::string& out);

// `raw` (a request path as sent) needs no decoding or resolving: no '%', no control
// character or DEL, no empty, "." or ".." segment but a final empty one. normalize_path
// then maps it to `raw` without its leading '/' (and its final '/', if any).
bool is_plain_path(std::string_view raw) noexcept;

}  // namespace netloop::http
