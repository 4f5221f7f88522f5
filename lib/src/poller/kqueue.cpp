// The kqueue backend (FreeBSD, macOS, and Linux through libkqueue): one knote per
// (descriptor, filter), level-triggered (no EV_CLEAR). A read and a write event for the
// same descriptor are merged into one report, as the other backends give.
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#include <vector>

#include "netloop/fd.hpp"
#include "poller/backends.hpp"

namespace netloop {
namespace {

class KqueuePoller final : public Poller {
 public:
  explicit KqueuePoller(Fd kq) : kq_(std::move(kq)) {}

  std::string_view name() const noexcept override { return "kqueue"; }

  Result<void> add(int fd, Interest interest, void* token) override {
    if (fd < 0) return make_error(EBADF);
    if (interest == Interest::none) return make_error(EINVAL);
    if (registered(fd)) return make_error(EEXIST);
    if (auto ec = apply(fd, Interest::none, interest)) return ec;
    remember(fd, interest, token);
    return {};
  }

  Result<void> modify(int fd, Interest interest, void* token) override {
    if (interest == Interest::none) return make_error(EINVAL);
    if (!registered(fd)) return make_error(ENOENT);
    // Tokens live in our table, not in the knotes' udata: a new token alone costs no
    // syscall, and only filters that come or go are changed.
    if (auto ec = apply(fd, interest_[fd], interest)) return ec;
    remember(fd, interest, token);
    return {};
  }

  Result<void> remove(int fd) override {
    if (!registered(fd)) return make_error(ENOENT);
    auto ec = apply(fd, interest_[fd], Interest::none);
    remember(fd, Interest::none, nullptr);
    return ec;
  }

  Result<size_t> wait(std::span<PollEvent> out, int timeout_ms) override {
    if (native_.size() < out.size()) native_.resize(out.size());
    backends::WaitDeadline deadline(timeout_ms);
    int n;
    for (;;) {
      timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1'000'000L};
      n = ::kevent(kq_.get(), nullptr, 0, native_.data(), int(out.size()),
                   timeout_ms < 0 ? nullptr : &ts);
      if (n >= 0) break;
      if (errno != EINTR) return last_error();
      timeout_ms = deadline.remaining_ms();
    }
    ++stamp_;
    size_t count = 0;
    for (int i = 0; i < n; ++i) {
      const struct kevent& ev = native_[i];
      int fd = int(ev.ident);
      uint32_t r = 0;
      if (ev.flags & EV_ERROR) {
        r = ready::error;
      } else if (ev.filter == EVFILT_READ) {
        r = ready::readable;  // EV_EOF here is the peer's half-close: read() returns 0
        if ((ev.flags & EV_EOF) && ev.fflags) r |= ready::error;
      } else if (ev.filter == EVFILT_WRITE) {
        r = ready::writable;
        if (ev.flags & EV_EOF) r |= ready::hangup;  // the peer cannot receive any more
        if ((ev.flags & EV_EOF) && ev.fflags) r |= ready::error;
      }
      if (!r || !registered(fd)) continue;
      if (seen_[fd] == stamp_) {
        out[where_[fd]].ready |= r;  // the other filter of a descriptor already reported
        continue;
      }
      seen_[fd] = stamp_;
      where_[fd] = count;
      out[count++] = {tokens_[fd], r};
    }
    return count;
  }

 private:
  bool registered(int fd) const {
    return fd >= 0 && size_t(fd) < interest_.size() && interest_[fd] != Interest::none;
  }

  void remember(int fd, Interest interest, void* token) {
    if (size_t(fd) >= interest_.size()) {
      interest_.resize(size_t(fd) + 1, Interest::none);
      tokens_.resize(size_t(fd) + 1, nullptr);
      seen_.resize(size_t(fd) + 1, 0);
      where_.resize(size_t(fd) + 1, 0);
    }
    interest_[fd] = interest;
    tokens_[fd] = token;
  }

  // Adds and deletes filters to go from `from` to `to`, in one kevent() call; EV_RECEIPT
  // makes it report each change's own result instead of events.
  std::error_code apply(int fd, Interest from, Interest to) {
    struct kevent changes[2];
    int n = 0;
    auto change = [&](int16_t filter, Interest bit) {
      bool had = has(from, bit), want = has(to, bit);
      if (want && !had)
        EV_SET(&changes[n++], fd, filter, EV_ADD | EV_ENABLE | EV_RECEIPT, 0, 0, nullptr);
      else if (had && !want)
        EV_SET(&changes[n++], fd, filter, EV_DELETE | EV_RECEIPT, 0, 0, nullptr);
    };
    change(EVFILT_READ, Interest::read);
    change(EVFILT_WRITE, Interest::write);
    if (n == 0) return {};
    struct kevent results[2];
    int got = ::kevent(kq_.get(), changes, n, results, n, nullptr);
    if (got < 0) return last_error();
    for (int i = 0; i < got; ++i)
      if ((results[i].flags & EV_ERROR) && results[i].data != 0 && results[i].data != ENOENT)
        return make_error(int(results[i].data));
    return {};
  }

  Fd kq_;
  std::vector<struct kevent> native_;
  std::vector<Interest> interest_;  // by descriptor: the filters registered
  std::vector<void*> tokens_;       // by descriptor: the caller's token
  std::vector<uint64_t> seen_;      // by descriptor: the wait that last reported it
  std::vector<size_t> where_;       // ...and at which index of `out`
  uint64_t stamp_ = 0;
};

}  // namespace

const backends::Backend backends::kqueue = {
    "kqueue",
    [] { return std::string(); },
    []() -> Result<std::unique_ptr<Poller>> {
      Fd kq(::kqueue());
      if (!kq) return last_error();
      return std::unique_ptr<Poller>(new KqueuePoller(std::move(kq)));
    },
};

}  // namespace netloop
