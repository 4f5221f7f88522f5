// MemoryDatagramSocket: UdpSocket's rules for a datagram handler, in memory.
#include "netloop/testing/memory_datagram_socket.hpp"

#include <span>
#include <vector>

namespace netloop::testing {

MemoryDatagramSocket::MemoryDatagramSocket(std::unique_ptr<DatagramHandler> handler, Address local)
    : handler_(std::move(handler)), local_(local) {}

void MemoryDatagramSocket::open() {
  if (state_ != State::unopened) return;
  state_ = State::open;
  handler_->on_open(*this);
}

void MemoryDatagramSocket::deliver(std::string_view datagram, const Address& from) {
  open();
  if (state_ != State::open) return;
  handler_->on_datagram(
      *this, std::span<const std::byte>(reinterpret_cast<const std::byte*>(datagram.data()),
                                        datagram.size()),
      from);
}

void MemoryDatagramSocket::close(const CloseInfo& info) {
  if (state_ == State::closed) return;
  state_ = State::closed;
  output_full_ = false;  // no on_drain after on_close
  for (TimerId id : timers_) clock_.timers().cancel(id);
  timers_.clear();
  handler_->on_close(*this, info);
}

void MemoryDatagramSocket::set_send_buffer_full(bool full) {
  send_full_ = full;
  if (full || !output_full_) return;
  output_full_ = false;
  if (state_ == State::open) handler_->on_drain(*this);
}

bool MemoryDatagramSocket::send_to(const Address& to, const void* data, size_t n) {
  // The largest UDP payload: 65,535 minus the UDP header and the IPv4 header (65,507), or
  // minus the UDP header alone for IPv6 (65,527, without jumbograms).
  size_t limit = to.family() == AF_INET6 ? 65527 : 65507;
  if (n > limit || state_ == State::closed) {
    ++refused_;
    return false;
  }
  if (send_full_) {
    ++dropped_;
    output_full_ = true;
    return true;
  }
  sent_.push_back({to, std::string(static_cast<const char*>(data), n)});
  return true;
}

std::vector<MemoryDatagramSocket::Sent> MemoryDatagramSocket::take_sent() {
  std::vector<Sent> out;
  out.swap(sent_);
  return out;
}

TimerId MemoryDatagramSocket::start_timer(Duration delay, Duration repeat, std::function<void()> fn) {
  std::erase_if(timers_, [this](TimerId t) { return !clock_.timers().pending(t); });
  TimerId id = clock_.timers().add(clock_.now() + delay, repeat, std::move(fn));
  timers_.push_back(id);
  return id;
}

}  // namespace netloop::testing
