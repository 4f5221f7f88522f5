// MemoryDatagramSocket: UdpSocket's rules for a datagram handler, in memory.
#include "netloop/testing/memory_datagram_socket.hpp"

#include <span>

namespace netloop::testing {

MemoryDatagramSocket::MemoryDatagramSocket(std::unique_ptr<DatagramHandler> handler, Address local)
    : handler_(std::move(handler)), local_(local) {}

void MemoryDatagramSocket::deliver(std::string_view datagram, const Address& from) {
  handler_->on_datagram(
      *this, std::span<const std::byte>(reinterpret_cast<const std::byte*>(datagram.data()),
                                        datagram.size()),
      from);
}

bool MemoryDatagramSocket::send_to(const Address& to, const void* data, size_t n) {
  // The largest UDP payload: 65,535 minus the UDP header and the IPv4 header (65,507), or
  // minus the UDP header alone for IPv6 (65,527, without jumbograms).
  size_t limit = to.family() == AF_INET6 ? 65527 : 65507;
  if (n > limit) {
    ++refused_;
    return false;
  }
  if (send_full_) {
    ++dropped_;
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
  return clock_.timers().add(clock_.now() + delay, repeat, std::move(fn));
}

}  // namespace netloop::testing
