// The poll() backend: portable, O(registered descriptors) per wait.
#include <fcntl.h>
#include <poll.h>

#include <vector>

#include "poller/backends.hpp"

namespace netloop {
namespace {

short to_poll(Interest interest) {
  short ev = 0;
  if (has(interest, Interest::read)) ev |= POLLIN;
  if (has(interest, Interest::write)) ev |= POLLOUT;
  return ev;
}

class PollPoller final : public Poller {
 public:
  std::string_view name() const noexcept override { return "poll"; }

  Result<void> add(int fd, Interest interest, void* token) override {
    // poll() would report a closed descriptor as POLLNVAL on every wait; refuse it now,
    // as epoll_ctl does.
    if (fd < 0 || ::fcntl(fd, F_GETFD) < 0) return make_error(EBADF);
    if (interest == Interest::none) return make_error(EINVAL);
    if (size_t(fd) >= slot_of_.size()) slot_of_.resize(size_t(fd) + 1, kNone);
    if (slot_of_[fd] != kNone) return make_error(EEXIST);
    slot_of_[fd] = int(fds_.size());
    fds_.push_back({fd, to_poll(interest), 0});
    tokens_.push_back(token);
    return {};
  }

  Result<void> modify(int fd, Interest interest, void* token) override {
    if (interest == Interest::none) return make_error(EINVAL);
    int s = slot(fd);
    if (s == kNone) return make_error(ENOENT);
    fds_[s].events = to_poll(interest);
    tokens_[s] = token;
    return {};
  }

  Result<void> remove(int fd) override {
    int s = slot(fd);
    if (s == kNone) return make_error(ENOENT);
    int last = int(fds_.size()) - 1;
    if (s != last) {  // move the last entry into the hole
      fds_[s] = fds_[last];
      tokens_[s] = tokens_[last];
      slot_of_[fds_[s].fd] = s;
    }
    fds_.pop_back();
    tokens_.pop_back();
    slot_of_[fd] = kNone;
    return {};
  }

  Result<size_t> wait(std::span<PollEvent> out, int timeout_ms) override {
    backends::WaitDeadline deadline(timeout_ms);
    int n;
    while ((n = ::poll(fds_.data(), nfds_t(fds_.size()), timeout_ms)) < 0) {
      if (errno != EINTR) return last_error();
      timeout_ms = deadline.remaining_ms();
    }
    size_t count = 0;
    const size_t total = fds_.size();
    // Start where the last full batch stopped, so with more ready descriptors than
    // out.size() none starves.
    size_t start = total ? start_ % total : 0;
    for (size_t k = 0; k < total && n > 0 && count < out.size(); ++k) {
      size_t i = (start + k) % total;
      short re = fds_[i].revents;
      if (!re) continue;
      --n;
      start_ = i + 1;
      uint32_t r = 0;
      if (re & POLLIN) r |= ready::readable;
      if (re & POLLOUT) r |= ready::writable;
      if (re & POLLHUP) r |= ready::hangup;
      if (re & POLLERR) r |= ready::error;
      if (re & POLLNVAL) r |= ready::error;  // closed without remove(): a caller bug, but say so
      out[count++] = {tokens_[i], r};
    }
    return count;
  }

 private:
  static constexpr int kNone = -1;
  int slot(int fd) const {
    return fd >= 0 && size_t(fd) < slot_of_.size() ? slot_of_[fd] : kNone;
  }

  std::vector<pollfd> fds_;
  std::vector<void*> tokens_;
  std::vector<int> slot_of_;  // fd -> index in fds_, or kNone
  size_t start_ = 0;          // where the next wait's scan begins
};

}  // namespace

const backends::Backend backends::poll = {
    "poll",
    [] { return std::string(); },
    []() -> Result<std::unique_ptr<Poller>> { return std::unique_ptr<Poller>(new PollPoller); },
};

}  // namespace netloop
