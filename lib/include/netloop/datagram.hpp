// The datagram handler seam: what a datagram handler is told, and what it may do.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string_view>
#include <system_error>

#include "netloop/address.hpp"
#include "netloop/clock.hpp"
#include "netloop/protocol.hpp"  // CloseReason, CloseInfo: one vocabulary for every handler
#include "netloop/timer_queue.hpp"

namespace netloop {

// What a datagram handler sees of its socket.
class DatagramSocket {
 public:
  virtual ~DatagramSocket() = default;

  // Queues one datagram for `to`; datagrams queued while handling a receive batch go out
  // together in one sendmmsg (on io_uring, by completion: with the loop's next wait, right
  // after this iteration). Returns false when it is refused at once: larger than a UDP
  // datagram can be (65,507 bytes over IPv4, 65,527 over IPv6), the socket no longer
  // serves (after on_close), or it is connected and `to` is not its peer (the sender of a
  // datagram it received always is). A datagram the kernel refuses later (send buffer
  // full) is dropped and counted in the socket's statistics: replies are never buffered
  // without bound. Such a drop makes output_full() true until on_drain.
  virtual bool send_to(const Address& to, const void* data, size_t n) = 0;
  bool send_to(const Address& to, std::string_view s) { return send_to(to, s.data(), s.size()); }
  bool send_to(const Address& to, std::span<const std::byte> b) {
    return send_to(to, b.data(), b.size());
  }

  // Queues one datagram for the connected peer (a socket made by UdpSocket::connect), as
  // send_to(peer_address(), ...) does. Returns false when it is refused at once: the socket
  // is not connected (a socket from UdpSocket::bind has no peer: use send_to), or for
  // send_to's reasons.
  virtual bool send(const void* data, size_t n) = 0;
  bool send(std::string_view s) { return send(s.data(), s.size()); }
  bool send(std::span<const std::byte> b) { return send(b.data(), b.size()); }

  // The kernel's send buffer was full and a datagram was dropped; on_drain comes when it
  // has room again. A handler that sends on its own (not only replies) should hold back
  // meanwhile: what it sends now is likely dropped too.
  virtual bool output_full() const noexcept = 0;
  virtual bool is_open() const noexcept = 0;  // from on_open until on_close

  virtual const Address& local_address() const noexcept = 0;
  // The peer a connected socket sends to and alone receives from; an unset Address
  // (AF_UNSPEC, printed "-") when the socket is not connected.
  virtual const Address& peer_address() const noexcept = 0;
  bool connected() const noexcept { return peer_address().family() != AF_UNSPEC; }
  // Timers tied to this socket: cancelled automatically when it closes. cancel_timer says
  // whether the timer was still pending (as Connection's and EventLoop's do).
  virtual TimerId start_timer(Duration delay, Duration repeat, std::function<void()> fn) = 0;
  virtual bool cancel_timer(TimerId id) = 0;
  virtual TimePoint now() const noexcept = 0;
};

// The calls mirror StreamHandler's (protocol.hpp): on_open, then on_datagram any number of
// times, on_drain after the kernel pushed back, on_peer_error (connected sockets) when an
// ICMP error came back, and on_close last.
class DatagramHandler {
 public:
  virtual ~DatagramHandler() = default;
  // The socket is bound (and, from UdpSocket::connect, connected) and serving: datagrams
  // may arrive from now on.
  virtual void on_open(DatagramSocket&) {}
  // One whole datagram and its sender. `data` is valid only during the call.
  virtual void on_datagram(DatagramSocket& socket, std::span<const std::byte> data,
                           const Address& from) = 0;
  // The send buffer that was full (a datagram was dropped: output_full()) has room again.
  // UDP queues nothing that the kernel refused, so nothing is written for the handler
  // here: it only hears that sending works again.
  virtual void on_drain(DatagramSocket&) {}
  // A connected socket (UdpSocket::connect) heard from the kernel that its peer cannot be
  // reached: an ICMP error to an earlier datagram, surfacing on a later receive or send
  // (ECONNREFUSED for "port unreachable": nothing listens there; EHOSTUNREACH,
  // ENETUNREACH, EHOSTDOWN, ENETDOWN...). The send that surfaces it drops its own datagram.
  // Information only: UDP has no connection to lose, the socket goes on serving, and the
  // peer may answer the next datagram. Called from the loop, never from inside send();
  // errors that surface before the call are counted (UdpStats::peer_errors) but folded
  // into it, with the latest error. An unconnected socket never hears this: the kernel
  // cannot say which peer an error is about (Linux does not even report it to such a
  // socket), so it only counts any that surface.
  virtual void on_peer_error(DatagramSocket&, std::error_code) {}
  // Last call: the socket stopped serving, and why. CloseReason::shutdown when its owner
  // let it go (a Server stopping or draining, or the holder of the UdpSocket destroying
  // it); CloseReason::error when it cannot serve any more (CloseInfo::error says why; the
  // poller refused it, say). Replies still queued have been handed to the kernel. The
  // socket must not be used afterwards.
  virtual void on_close(DatagramSocket&, const CloseInfo&) {}
};

}  // namespace netloop
