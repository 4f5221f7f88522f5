// IoWatcher: registering, changing and stopping one descriptor's interest.
#include "netloop/event_loop.hpp"
#include "netloop/io_watcher.hpp"

#include "completion.hpp"

namespace netloop {

Result<void> IoWatcher::start(int fd, Interest interest) {
  loop_.assert_in_loop_thread();
  if (active()) stop();
  fd_ = fd;
  wanted_ = interest;
  registered_ = Interest::none;
  error_ = {};
  channel_ = false;
  if (interest != Interest::none) {
    if (auto ec = loop_.poller_->add(fd, interest, this).error()) {
      fd_ = -1;
      wanted_ = Interest::none;
      return ec;
    }
    registered_ = interest;
  }
  return {};
}

Result<std::unique_ptr<DatagramChannel>> IoWatcher::open_datagram_channel(
    int fd, const DatagramChannelOptions& options) {
  loop_.assert_in_loop_thread();
  if (active()) stop();
  CompletionIo* completion = loop_.completion();
  if (!completion) return make_error(ENOTSUP);
  auto channel = completion->open_datagram_channel(fd, this, options);
  if (!channel) return channel.error();
  fd_ = fd;
  wanted_ = registered_ = Interest::read;  // what its reports look like to dispatch()
  error_ = {};
  channel_ = true;
  return channel;
}

void IoWatcher::set_interest(Interest interest) {
  loop_.assert_in_loop_thread();
  if (!active() || interest == wanted_ || channel_) return;
  wanted_ = interest;
  loop_.queue_change(this);
}

void IoWatcher::stop() noexcept {
  if (!active()) return;
  loop_.assert_in_loop_thread();
  if (registered_ != Interest::none && !channel_) loop_.poller_->remove(fd_);
  loop_.forget(this);
  channel_ = false;
  fd_ = -1;
  wanted_ = registered_ = Interest::none;
}

}  // namespace netloop
