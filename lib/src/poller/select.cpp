// The select() backend: the portable fallback. Descriptors at or above FD_SETSIZE are
// refused with an error naming the backends to use instead (FD_SET on them would write
// past the set: undefined behaviour).
#include <fcntl.h>
#include <sys/select.h>

#include <algorithm>
#include <vector>

#include "netloop/error.hpp"
#include "poller/backends.hpp"

namespace netloop {
namespace {

class SelectPoller final : public Poller {
 public:
  SelectPoller() {
    FD_ZERO(&read_);
    FD_ZERO(&write_);
  }

  std::string_view name() const noexcept override { return "select"; }

  Result<void> add(int fd, Interest interest, void* token) override {
    if (fd < 0) return make_error(EBADF);
    if (fd >= FD_SETSIZE) return make_error(Errc::fd_too_large_for_select);
    if (interest == Interest::none) return make_error(EINVAL);
    if (size_t(fd) < tokens_.size() && interest_[fd] != Interest::none) return make_error(EEXIST);
    if (::fcntl(fd, F_GETFD) < 0) return make_error(EBADF);  // select() would fail with EBADF
    set(fd, interest, token);
    fds_.push_back(fd);
    return {};
  }

  Result<void> modify(int fd, Interest interest, void* token) override {
    if (interest == Interest::none) return make_error(EINVAL);
    if (!registered(fd)) return make_error(ENOENT);
    set(fd, interest, token);
    return {};
  }

  Result<void> remove(int fd) override {
    if (!registered(fd)) return make_error(ENOENT);
    FD_CLR(fd, &read_);
    FD_CLR(fd, &write_);
    interest_[fd] = Interest::none;
    tokens_[fd] = nullptr;
    fds_.erase(std::find(fds_.begin(), fds_.end(), fd));
    return {};
  }

  Result<size_t> wait(std::span<PollEvent> out, int timeout_ms) override {
    // No exceptfds: for sockets it means out-of-band data, not errors. A pending error
    // makes the descriptor readable and writable, and the next syscall reports it.
    fd_set r = read_, w = write_;
    int maxfd = fds_.empty() ? -1 : *std::max_element(fds_.begin(), fds_.end());
    backends::WaitDeadline deadline(timeout_ms);
    int n;
    for (;;) {
      timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
      n = ::select(maxfd + 1, &r, &w, nullptr, timeout_ms < 0 ? nullptr : &tv);
      if (n >= 0) break;
      if (errno != EINTR) return last_error();
      timeout_ms = deadline.remaining_ms();
      r = read_;
      w = write_;
    }
    // Start where the last full batch stopped, so with more ready descriptors than
    // out.size() none starves.
    size_t count = 0;
    const size_t total = fds_.size();
    const size_t start = total ? start_ % total : 0;
    for (size_t k = 0; k < total && n > 0 && count < out.size(); ++k) {
      size_t i = (start + k) % total;
      int fd = fds_[i];
      uint32_t ready = 0;
      if (FD_ISSET(fd, &r)) ready |= ready::readable;
      if (FD_ISSET(fd, &w)) ready |= ready::writable;
      if (!ready) continue;
      out[count++] = {tokens_[fd], ready};
      start_ = i + 1;
    }
    return count;
  }

 private:
  bool registered(int fd) const {
    return fd >= 0 && size_t(fd) < interest_.size() && interest_[fd] != Interest::none;
  }
  void set(int fd, Interest interest, void* token) {
    if (size_t(fd) >= tokens_.size()) {
      tokens_.resize(size_t(fd) + 1, nullptr);
      interest_.resize(size_t(fd) + 1, Interest::none);
    }
    if (has(interest, Interest::read)) FD_SET(fd, &read_); else FD_CLR(fd, &read_);
    if (has(interest, Interest::write)) FD_SET(fd, &write_); else FD_CLR(fd, &write_);
    interest_[fd] = interest;
    tokens_[fd] = token;
  }

  fd_set read_;
  fd_set write_;
  std::vector<int> fds_;  // registered descriptors
  std::vector<void*> tokens_;
  std::vector<Interest> interest_;
  size_t start_ = 0;
};

}  // namespace

const backends::Backend backends::select = {
    "select",
    [] { return std::string(); },
    []() -> Result<std::unique_ptr<Poller>> { return std::unique_ptr<Poller>(new SelectPoller); },
};

}  // namespace netloop
