// The datagram handler seam: what a datagram handler is told, and what it may do.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string_view>

#include "netloop/address.hpp"
#include "netloop/clock.hpp"
#include "netloop/timer_queue.hpp"

namespace netloop {

// What a datagram handler sees of its socket.
class DatagramSocket {
 public:
  virtual ~DatagramSocket() = default;

  // Queues one datagram for `to`; datagrams queued while handling a receive batch go out
  // together in one sendmmsg (on io_uring, by completion: with the loop's next wait, right
  // after this iteration). Returns false when it is refused at once (larger than a UDP
  // datagram can be: 65,507 bytes over IPv4, 65,527 over IPv6). A datagram the kernel
  // refuses later (send buffer full) is dropped and counted in the socket's statistics:
  // replies are never buffered without bound.
  virtual bool send_to(const Address& to, const void* data, size_t n) = 0;
  bool send_to(const Address& to, std::string_view s) { return send_to(to, s.data(), s.size()); }
  bool send_to(const Address& to, std::span<const std::byte> b) {
    return send_to(to, b.data(), b.size());
  }

  virtual const Address& local_address() const noexcept = 0;
  virtual TimerId start_timer(Duration delay, Duration repeat, std::function<void()> fn) = 0;
  virtual void cancel_timer(TimerId id) = 0;
  virtual TimePoint now() const noexcept = 0;
};

class DatagramHandler {
 public:
  virtual ~DatagramHandler() = default;
  // One whole datagram and its sender. `data` is valid only during the call.
  virtual void on_datagram(DatagramSocket& socket, std::span<const std::byte> data,
                           const Address& from) = 0;
};

}  // namespace netloop
