// Opening files beneath the served root: openat2(RESOLVE_BENEATH) where the kernel has it,
// a resolved-path check elsewhere.
#include "http/root_directory.hpp"

#include <atomic>
#include <cerrno>
#include <climits>
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
std::atomic<bool> g_openat2_missing{false};

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

Result<RootDirectory> RootDirectory::open(const std::string& path) {
  char resolved[PATH_MAX];
  if (!::realpath(path.c_str(), resolved)) return last_error();
  int fd = ::open(resolved, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return last_error();
  std::string real(resolved);
  while (real.size() > 1 && real.back() == '/') real.pop_back();
  return RootDirectory(Fd(fd), std::move(real));
}

OpenedFile RootDirectory::open_file(std::string_view relative, std::string& scratch) const {
  int fd = -1;
  bool done = false;
#ifdef NETLOOP_HAVE_OPENAT2
  if (!g_openat2_missing.load(std::memory_order_relaxed)) {
    scratch.assign(relative.empty() ? std::string_view(".") : relative);
    fd = open_beneath(fd_.get(), scratch.c_str());
    if (fd >= 0) {
      done = true;
    } else if (errno == ENOSYS || errno == EPERM) {
      // No openat2 here (old kernel, or a seccomp filter): use the portable way from now on.
      // EPERM only from a filter: openat2 itself reports permissions as EACCES.
      g_openat2_missing.store(true, std::memory_order_relaxed);
    } else if (errno != EXDEV) {
      return failure(errno);
    }
    // EXDEV: the path left the root, or met an absolute symlink, which RESOLVE_BENEATH
    // refuses even when it points back inside. The resolved-path check below tells.
  }
#endif
  if (!done) {
    // Resolve every symlink, then insist the result is still beneath the root. The file is
    // opened by its resolved name, so what was checked is what is opened (short of a
    // rename in between by someone who can write inside the root).
    scratch.assign(real_path_);
    if (!relative.empty()) {
      scratch.push_back('/');
      scratch.append(relative);
    }
    char resolved[PATH_MAX];
    if (!::realpath(scratch.c_str(), resolved)) return failure(errno);
    std::string_view r(resolved);
    bool beneath = r == real_path_ ||
                   (r.size() > real_path_.size() && r.substr(0, real_path_.size()) == real_path_ &&
                    (r[real_path_.size()] == '/' || real_path_ == "/"));
    if (!beneath) return failure(EXDEV);
    fd = ::open(resolved, kOpenFlags);
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
