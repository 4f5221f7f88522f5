// The epoll backend (Linux): level-triggered, one epoll_ctl per registration change.
#include <sys/epoll.h>

#include "netloop/fd.hpp"
#include "poller/backends.hpp"

namespace netloop {
namespace {

uint32_t to_epoll(Interest interest) {
  // No EPOLLRDHUP: a peer's half-close shows as readable (read returns 0). Reporting it
  // as hangup would fire on every wait for a socket that only wants write interest.
  uint32_t ev = 0;
  if (has(interest, Interest::read)) ev |= EPOLLIN;
  if (has(interest, Interest::write)) ev |= EPOLLOUT;
  return ev;
}

class EpollPoller final : public Poller {
 public:
  explicit EpollPoller(Fd epfd) : epfd_(std::move(epfd)) {}

  std::string_view name() const noexcept override { return "epoll"; }

  Result<void> add(int fd, Interest interest, void* token) override {
    return ctl(EPOLL_CTL_ADD, fd, interest, token);
  }
  Result<void> modify(int fd, Interest interest, void* token) override {
    return ctl(EPOLL_CTL_MOD, fd, interest, token);
  }
  Result<void> remove(int fd) override {
    epoll_event ev{};
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, &ev) < 0) return last_error();
    return {};
  }

  Result<size_t> wait(std::span<PollEvent> out, int timeout_ms) override {
    if (out.empty()) return size_t{0};
    if (native_.size() < out.size()) native_.resize(out.size());
    backends::WaitDeadline deadline(timeout_ms);
    int n;
    while ((n = ::epoll_wait(epfd_.get(), native_.data(), int(out.size()), timeout_ms)) < 0) {
      if (errno != EINTR) return last_error();
      timeout_ms = deadline.remaining_ms();
    }
    for (int i = 0; i < n; ++i) {
      uint32_t e = native_[i].events;
      uint32_t r = 0;
      if (e & EPOLLIN) r |= ready::readable;
      if (e & EPOLLOUT) r |= ready::writable;
      if (e & EPOLLHUP) r |= ready::hangup;
      if (e & EPOLLERR) r |= ready::error;
      out[i] = {native_[i].data.ptr, r};
    }
    return size_t(n);
  }

 private:
  std::error_code ctl(int op, int fd, Interest interest, void* token) {
    if (interest == Interest::none) return make_error(EINVAL);
    epoll_event ev{};
    ev.events = to_epoll(interest);
    ev.data.ptr = token;
    if (::epoll_ctl(epfd_.get(), op, fd, &ev) < 0) return last_error();
    return {};
  }

  Fd epfd_;
  std::vector<epoll_event> native_;
};

}  // namespace

const backends::Backend backends::epoll = {
    "epoll",
    [] { return std::string(); },
    []() -> Result<std::unique_ptr<Poller>> {
      Fd fd(::epoll_create1(EPOLL_CLOEXEC));
      if (!fd) return last_error();
      return std::unique_ptr<Poller>(new EpollPoller(std::move(fd)));
    },
};

}  // namespace netloop
