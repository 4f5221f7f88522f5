// Fd: the one owner of a file descriptor; closes it exactly once.
#pragma once

#include <system_error>
#include <utility>

#include "netloop/result.hpp"

namespace netloop {

class Fd {
 public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) reset();  // most are empty by now (released or moved from): no call
  }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  // Gives up ownership without closing.
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the current descriptor (if any) and takes ownership of `fd`.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// Sets O_NONBLOCK and FD_CLOEXEC; returns false (errno set) on failure.
bool set_nonblocking_cloexec(int fd) noexcept;

// Sets SO_REUSEPORT on socket `fd` (before bind): ENOTSUP where the platform has none.
Result<void> set_reuse_port(int fd) noexcept;

}  // namespace netloop
