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
  enum class Resolver : uint8_t {
    automatic,  // openat2 where the kernel has it (probed once, here), else portable
    portable,   // realpath, the beneath check, then a walk with O_NOFOLLOW (tests use it)
  };
  // Opens `path` (a directory) for serving; the error names the path and the cause.
  // Whether openat2 is used is decided here, once: a probe that fails with ENOSYS or
  // EPERM (a seccomp filter) means no; a later EPERM is an answer about one file.
  static Result<RootDirectory> open(const std::string& path, Resolver resolver = Resolver::automatic);

  // Opens `relative` (from normalize_path: no leading '/', no dot segments; "" is the
  // root) read-only and non-blocking (a FIFO must not stall the loop). Symlinks are
  // followed only while they stay beneath the root: on Linux through openat2's
  // RESOLVE_BENEATH (and, for what it refuses, such as an absolute symlink pointing back
  // inside, the portable way), elsewhere the portable way: the path is resolved, checked
  // to lie beneath the root, and the resolved path opened one component at a time with
  // O_NOFOLLOW from the root's descriptor, so a symlink swapped in after the check makes
  // the open fail rather than leave the root. 404 for what is missing, 403 for what is
  // outside the root, unreadable, or neither a file nor a directory.
  OpenedFile open_file(std::string_view relative, std::string& scratch) const;

  const std::string& path() const noexcept { return real_path_; }
  // The path of the open file `fd` relative to the root ("" for the root itself), as the
  // kernel resolved it (Linux: /proc/self/fd); false where that cannot be had.
  bool relative_path_of(int fd, std::string& out) const;
  bool uses_openat2() const noexcept { return openat2_; }

 private:
  RootDirectory(Fd fd, std::string real_path, bool openat2)
      : fd_(std::move(fd)), real_path_(std::move(real_path)), openat2_(openat2) {}
  int open_portable(std::string_view relative, std::string& scratch) const;

  Fd fd_;
  std::string real_path_;  // resolved, without a trailing '/'
  bool openat2_ = false;
};

}  // namespace netloop::http
