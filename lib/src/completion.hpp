// Private: the completion I/O seam, for backends that do I/O by completion (io_uring).
//
// The Poller (netloop/poller.hpp) is the readiness seam: it says when a descriptor may be
// read or written. A backend that can also hand the kernel whole operations offers this
// second face, which a loop finds with EventLoop::completion() (null on the readiness
// backends: epoll, kqueue, poll, select). Today it serves UDP sockets: a datagram channel
// receives a socket's datagrams into buffers of its own and sends what it is given with
// the backend's next wait, so that one system call carries a whole iteration's receives
// and replies. A channel's work is reported by the poller's wait() as ready::readable with
// the channel's token, so the loop dispatches it like any readiness event.
//
// Not a public header: only the library's sockets use it (a handler never sees it), and it
// is free to change with the backends that implement it.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "netloop/result.hpp"

struct sockaddr;

namespace netloop {

struct DatagramChannelOptions {
  size_t max_datagram = 65535;  // payload room per receive buffer; larger ones are truncated
  size_t buffers = 128;         // receive buffers lent to the kernel (a power of two, >= 2)
};

// What a channel hands back to its owner, from DatagramChannel::process() and settle() only.
class DatagramChannelSink {
 public:
  virtual ~DatagramChannelSink() = default;
  // One whole datagram and its sender; both are valid only during the call.
  virtual void on_channel_datagram(std::span<const std::byte> data, const sockaddr* from,
                                   unsigned from_length) = 0;
  // A datagram larger than max_datagram: it was cut short, so it is not delivered.
  virtual void on_channel_truncated() = 0;
  // A datagram given to send() went out whole (`bytes`), or was refused (`err`: EAGAIN
  // or ENOBUFS when the send buffer is full, EMSGSIZE, ECONNREFUSED...).
  virtual void on_channel_sent(size_t bytes) = 0;
  virtual void on_channel_send_failed(int err) = 0;
  // The kernel ended the receive with `err` (buffers running dry is the channel's own
  // business and never reported). True: the error says nothing about the socket (an ICMP
  // error from an earlier send, for UDP) and the channel receives on. False: the channel
  // stops receiving (an old kernel without multishot receive says EINVAL): nothing more
  // comes from process() but the results of sends, and the owner serves it by readiness.
  virtual bool on_channel_receive_error(int err) = 0;
};

class DatagramChannel {
 public:
  // Stops receiving and forgets every pending send and completion: after it the sink hears
  // nothing more and the poller reports the token no more. The descriptor stays open.
  virtual ~DatagramChannel() = default;

  // Hands what completed since the last call to `sink`: at most `max_datagrams` received
  // datagrams (and their buffers go back to the kernel afterwards), with every send result
  // and error met on the way. Returns the number of datagrams (and truncated ones)
  // handled. While more are left, the poller reports the token again at its next wait.
  virtual size_t process(DatagramChannelSink& sink, size_t max_datagrams) = 0;

  // Queues one datagram for `to`, copying both (`to` null and `to_length` 0: for the peer
  // of a connected socket); it goes to the kernel with the next wait (or sooner, when the
  // queue is full). The result reaches the sink from a later process(). False: it cannot
  // be queued (too many in flight); the caller drops it.
  virtual bool send(const sockaddr* to, unsigned to_length, const void* data, size_t n) = 0;

  // Hands every queued send to the kernel now and reports their results to `sink` (the
  // datagrams received meanwhile wait for process()). For an owner about to read its
  // counters for good or to close the channel.
  virtual void settle(DatagramChannelSink& sink) = 0;
};

// A backend's completion side. The loop's IoWatcher is the usual caller: it passes itself
// as the token, so the channel's reports reach its callback.
class CompletionIo {
 public:
  // Serves `fd` (a bound or connected nonblocking UDP socket, not added to the poller) through a
  // datagram channel, whose work the poller's wait() reports as ready::readable with
  // `token`. ENOTSUP when this kernel cannot (no buffer rings before Linux 5.19).
  virtual Result<std::unique_ptr<DatagramChannel>> open_datagram_channel(
      int fd, void* token, const DatagramChannelOptions& options) = 0;

 protected:
  ~CompletionIo() = default;  // owned as the backend's Poller, never through this face
};

}  // namespace netloop
