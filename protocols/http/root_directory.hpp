// The served root: opens files beneath it and nowhere else, symlinks included.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/stat.h>

#include "netloop/fd.hpp"
#include "netloop/result.hpp"

namespace netloop::http {

struct OpenedFile {
  Fd fd;
  struct stat st {};
  uint16_t http_status = 0;  // 0: opened; else 403, 404 or 500
  std::string_view reason;
};

class RootDirectory {
 public:
  // Opens `path` (a directory) for serving; the error names the path and the cause.
  static Result<RootDirectory> open(const std::string& path);

  // Opens `relative` (from normalize_path: no leading '/', no dot segments; "" is the
  // root) read-only and non-blocking (a FIFO must not stall the loop). Symlinks are
  // followed only while they stay beneath the root: on Linux through openat2's
  // RESOLVE_BENEATH (and, for what it refuses, such as an absolute symlink pointing back
  // inside, the resolved-path check), elsewhere by checking the resolved path. 404 for what is missing,
  // 403 for what is outside the root, unreadable, or neither a file nor a directory.
  OpenedFile open_file(std::string_view relative, std::string& scratch) const;

  const std::string& path() const noexcept { return real_path_; }

 private:
  RootDirectory(Fd fd, std::string real_path) : fd_(std::move(fd)), real_path_(std::move(real_path)) {}
  Fd fd_;
  std::string real_path_;  // resolved, without a trailing '/'
};

}  // namespace netloop::http
