// Opening files beneath the served root: openat2(RESOLVE_BENEATH) where the kernel has it,
// a resolved-path check elsewhere.
#include "http/root_directory.hpp"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

#if defined(__linux__) && __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#include <sys/syscall.h>
#define NETLOOP_HAVE_OPENAT2 1
#endif

namespace netloop::http {
namespace {

constexpr int kOpenFlags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;

OpenedFile failure(int err) {
  OpenedFile f;
  switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
      f.http_status = 404;
      f.reason = "not found";
      break;
    case EXDEV:  // RESOLVE_BENEATH: the path (through a symlink) leaves the root
    case ELOOP:
    case EACCES:
    case EPERM:
      f.http_status = 403;
      f.reason = "forbidden";
      break;
    case EMFILE:
    case ENFILE:
      f.http_status = 503;
      f.reason = "out of file descriptors";
      break;
    default:
      f.http_status = 500;
      f.reason = "cannot open file";
      break;
  }
  return f;
}

#ifdef NETLOOP_HAVE_OPENAT2
// -1 with errno, or a descriptor; ENOSYS when the kernel (or a seccomp filter) lacks it.
int open_beneath(int dirfd, const char* path) {
  open_how how{};
  how.flags = kOpenFlags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0; attempt < 4; ++attempt) {
    long fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0) return int(fd);
    if (errno != EAGAIN && errno != EINTR) break;  // EAGAIN: a rename raced the lookup
  }
  return -1;
}
#endif

}  // namespace

Result<RootDirectory> RootDirectory::open(const std::string& path, Resolver resolver) {
  char resolved[PATH_MAX];
  if (!::realpath(path.c_str(), resolved)) return last_error();
  int fd = ::open(resolved, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return last_error();
  Fd dir(fd);
  std::string real(resolved);
  while (real.size() > 1 && real.back() == '/') real.pop_back();
  bool openat2 = false;
#ifdef NETLOOP_HAVE_OPENAT2
  if (resolver == Resolver::automatic) {
    int probe = open_beneath(dir.get(), ".");
    if (probe >= 0) {
      ::close(probe);
      openat2 = true;
    } else if (errno != ENOSYS && errno != EPERM) {
      return last_error();  // the root itself cannot be opened that way: say why
    }
  }
#else
  (void)resolver;
#endif
  return RootDirectory(std::move(dir), std::move(real), openat2);
}

// The resolved path is checked to lie beneath the root, then opened from the root's
// descriptor one component at a time with O_NOFOLLOW: it has no symlink left in it, so
// one found now was swapped in after the check, and the open fails (ELOOP) instead of
// following it out of the root.
int RootDirectory::open_portable(std::string_view relative, std::string& scratch) const {
  scratch.assign(real_path_);
  if (!relative.empty()) {
    scratch.push_back('/');
    scratch.append(relative);
  }
  char resolved[PATH_MAX];
  if (!::realpath(scratch.c_str(), resolved)) return -1;
  std::string_view r(resolved);
  std::string_view rest;
  if (r == real_path_) {
    rest = {};
  } else if (real_path_ == "/" && r.size() > 1) {
    rest = r.substr(1);
  } else if (r.size() > real_path_.size() + 1 && r.substr(0, real_path_.size()) == real_path_ &&
             r[real_path_.size()] == '/') {
    rest = r.substr(real_path_.size() + 1);
  } else {
    errno = EXDEV;
    return -1;
  }
  if (rest.empty()) return ::openat(fd_.get(), ".", kOpenFlags);
  Fd dir;
  int at = fd_.get();
  for (;;) {
    size_t slash = rest.find('/');
    scratch.assign(rest.substr(0, slash));
    if (slash == std::string_view::npos)
      return ::openat(at, scratch.c_str(), kOpenFlags | O_NOFOLLOW);
    int next = ::openat(at, scratch.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) return -1;
    dir.reset(next);
    at = next;
    rest.remove_prefix(slash + 1);
  }
}

bool RootDirectory::relative_path_of(int fd, std::string& out) const {
#ifdef __linux__
  char link[32];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char target[PATH_MAX];
  ssize_t n = ::readlink(link, target, sizeof target - 1);
  if (n <= 0) return false;
  std::string_view t(target, size_t(n));
  if (t == real_path_) {
    out.clear();
    return true;
  }
  if (real_path_ == "/") {
    out.assign(t.substr(1));
    return true;
  }
  if (t.size() > real_path_.size() && t.substr(0, real_path_.size()) == real_path_ &&
      t[real_path_.size()] == '/') {
    out.assign(t.substr(real_path_.size() + 1));
    return true;
  }
  return false;
#else
  (void)fd;
  (void)out;
  return false;
#endif
}

OpenedFile RootDirectory::open_file(std::string_view relative, std::string& scratch) const {
  int fd = -1;
#ifdef NETLOOP_HAVE_OPENAT2
  if (openat2_) {
    scratch.assign(relative.empty() ? std::string_view(".") : relative);
    fd = open_beneath(fd_.get(), scratch.c_str());
    // EXDEV: the path left the root, or met an absolute symlink, which RESOLVE_BENEATH
    // refuses even when it points back inside: the portable way tells which.
    if (fd < 0 && errno != EXDEV) return failure(errno);
  }
#endif
  if (fd < 0) {
    fd = open_portable(relative, scratch);
    if (fd < 0) return failure(errno);
  }
  OpenedFile f;
  f.fd.reset(fd);
  if (::fstat(fd, &f.st) != 0) return failure(errno);
  if (!S_ISREG(f.st.st_mode) && !S_ISDIR(f.st.st_mode)) {
    OpenedFile refused = failure(EACCES);
    refused.reason = "not a regular file";
    return refused;
  }
  return f;
}

}  // namespace netloop::http
