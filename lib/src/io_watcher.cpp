// IoWatcher: registering, changing and stopping one descriptor's interest.
#include "netloop/event_loop.hpp"

namespace netloop {

std::error_code IoWatcher::start(int fd, Interest interest) {
  loop_.assert_in_loop_thread();
  if (active()) stop();
  fd_ = fd;
  wanted_ = interest;
  registered_ = Interest::none;
  error_ = {};
  if (interest != Interest::none) {
    if (auto ec = loop_.poller_->add(fd, interest, this)) {
      fd_ = -1;
      wanted_ = Interest::none;
      return ec;
    }
    registered_ = interest;
  }
  return {};
}

void IoWatcher::set_interest(Interest interest) {
  loop_.assert_in_loop_thread();
  if (!active() || interest == wanted_) return;
  wanted_ = interest;
  loop_.queue_change(this);
}

void IoWatcher::stop() noexcept {
  if (!active()) return;
  loop_.assert_in_loop_thread();
  if (registered_ != Interest::none) loop_.poller_->remove(fd_);
  loop_.forget(this);
  fd_ = -1;
  wanted_ = registered_ = Interest::none;
}

}  // namespace netloop
