// Poller: the backend-neutral readiness interface; the only seam that knows epoll & co.
//
// Contract, the same for every backend (proven by tests/unit/test_poller_conformance.cpp):
// - Level-triggered as seen by the caller: a descriptor is reported on every wait() for
//   as long as it is ready for an interest it is registered with.
// - add() registers a descriptor once, with a non-empty interest and a caller token;
//   modify() replaces interest and token; remove() forgets it (call it before close()).
//   A descriptor with no interest is not registered at all: callers remove() it, since
//   some kernels report hangup and error even for an empty interest.
// - wait() fills the caller's array with at most out.size() events and returns how many;
//   timeout_ms < 0 waits forever, 0 polls. EINTR is reported as zero events.
// - A peer's end of stream (half-close) is reported as readable: read() returns 0.
//   hangup means the descriptor is finished in both directions (closed or reset); error
//   means it has a pending error (read it with SO_ERROR or by the next syscall). Both are
//   reported whatever the interest, as long as there is one.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "netloop/result.hpp"

struct sockaddr;

namespace netloop {

// What a caller wants to hear about (bit set).
enum class Interest : uint8_t { none = 0, read = 1, write = 2, read_write = 3 };
constexpr Interest operator|(Interest a, Interest b) noexcept {
  return Interest(uint8_t(a) | uint8_t(b));
}
constexpr Interest operator&(Interest a, Interest b) noexcept {
  return Interest(uint8_t(a) & uint8_t(b));
}
constexpr Interest without(Interest a, Interest b) noexcept {
  return Interest(uint8_t(a) & ~uint8_t(b));
}
constexpr bool has(Interest set, Interest bit) noexcept { return (set & bit) != Interest::none; }

// What happened (bit set).
namespace ready {
constexpr uint32_t readable = 1;
constexpr uint32_t writable = 2;
constexpr uint32_t hangup = 4;
constexpr uint32_t error = 8;
}  // namespace ready

struct PollEvent {
  void* token;     // as given to add()/modify()
  uint32_t ready;  // ready:: bits
};

// ---------------------------------------------------------------------------------------
// Datagram channels: an optional capability for backends that do I/O by completion
// (io_uring). A channel receives a UDP socket's datagrams into buffers of its own and
// sends what it is given with the backend's next wait, so that one system call can carry
// a whole iteration's receives and replies. Backends without it (epoll, kqueue, poll,
// select) refuse to open one, and the socket is served by readiness instead.

struct DatagramChannelOptions {
  size_t max_datagram = 65535;  // payload room per receive buffer; larger ones are truncated
  size_t buffers = 128;         // receive buffers lent to the kernel (a power of two, >= 2)
};

// What a channel hands back to its owner, from DatagramChannel::process() only.
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
  // A receive error that stopped nothing (an ICMP error from an earlier send surfacing as
  // ECONNREFUSED & co.): the channel goes on receiving.
  virtual void on_channel_peer_error(int err) = 0;
  // The channel cannot receive on this socket any more (`err`: an old kernel without
  // multishot receive says EINVAL). Nothing more will come: serve it by readiness.
  virtual void on_channel_failed(int err) = 0;
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

  // Queues one datagram for `to`, copying both; it goes to the kernel with the next wait
  // (or sooner, when the queue is full). The result reaches the sink from a later
  // process(). False: it cannot be queued (too many in flight); the caller drops it.
  virtual bool send(const sockaddr* to, unsigned to_length, const void* data, size_t n) = 0;

  // Hands every queued send to the kernel now and reports their results to `sink` (the
  // datagrams received meanwhile wait for process()). For an owner about to read its
  // counters for good or to close the channel.
  virtual void settle(DatagramChannelSink& sink) = 0;
};

class Poller {
 public:
  virtual ~Poller() = default;

  virtual std::string_view name() const noexcept = 0;
  virtual std::error_code add(int fd, Interest interest, void* token) = 0;
  virtual std::error_code modify(int fd, Interest interest, void* token) = 0;
  virtual std::error_code remove(int fd) = 0;
  virtual Result<size_t> wait(std::span<PollEvent> out, int timeout_ms) = 0;

  // Serves `fd` (a bound, nonblocking UDP socket, not added to this poller) through a
  // datagram channel, whose work wait() reports as ready::readable with `token`.
  // ENOTSUP when the backend has no channels (every readiness backend does so).
  virtual Result<std::unique_ptr<DatagramChannel>> open_datagram_channel(
      int fd, void* token, const DatagramChannelOptions& options) {
    (void)fd, (void)token, (void)options;
    return make_error(ENOTSUP);
  }
};

struct BackendInfo {
  std::string name;
  bool available;      // compiled in and usable on this kernel
  std::string reason;  // why not, when unavailable
};

// Every backend this library knows of, in order of preference, with availability.
std::vector<BackendInfo> available_backends();
// The best available backend's name ("epoll" on Linux).
std::string default_backend();
// Creates a backend by name; an unknown or unavailable name is an error whose message
// (via `why`) names the backends that would work.
Result<std::unique_ptr<Poller>> create_poller(std::string_view name, std::string* why = nullptr);

}  // namespace netloop
