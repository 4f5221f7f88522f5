// Fd: closing and descriptor flags.
#include "netloop/fd.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace netloop {

void Fd::reset(int fd) noexcept {
  if (fd_ >= 0) {
    // close() releases the descriptor even when it reports EINTR on Linux: never retry.
    ::close(fd_);
  }
  fd_ = fd;
}

bool set_nonblocking_cloexec(int fd) noexcept {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return false;
  int fdfl = ::fcntl(fd, F_GETFD);
  return fdfl >= 0 && ::fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) >= 0;
}

Result<void> set_reuse_port(int fd) noexcept {
#ifdef SO_REUSEPORT
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
    return std::error_code(errno, std::system_category());
  return {};
#else
  (void)fd;
  return {ENOTSUP, std::system_category()};
#endif
}

}  // namespace netloop
