// Transport: what a connection's bytes move through (a socket, the in-memory test pipe,
// later TLS over a socket). It only moves bytes and says what happened; every rule about
// closing, backpressure and draining lives once, in StreamConnection.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <span>
#include <system_error>

namespace netloop {

// The outcome of one transport call: `bytes` moved, and `error` 0 (done, or for a read
// with no bytes: the peer's end of stream), EAGAIN (nothing more now: wait for the next
// readable/writable event) or another errno (the transport failed).
struct IoResult {
  size_t bytes = 0;
  int error = 0;
  bool would_block() const noexcept { return error == EAGAIN; }  // (EWOULDBLOCK mapped)
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual IoResult read_some(void* into, size_t n) = 0;
  // `more`: more bytes follow at once (MSG_MORE): the transport may hold these back to
  // send them in one segment with the next.
  virtual IoResult write_some(const void* data, size_t n, bool more) = 0;
  virtual IoResult write_gather(std::span<const std::string_view> pieces) = 0;
  // Up to `n` bytes of the file `fd` from `offset`; `bytes` 0 with error 0: the file
  // ended early.
  virtual IoResult write_file(int fd, uint64_t offset, size_t n) = 0;
  // Our end of stream, after everything written so far.
  virtual void send_end_of_stream() noexcept = 0;
  // What the connection wants to hear about next (readable, writable).
  virtual void want_events(bool read, bool write) = 0;
  // Lets the transport go: `reset` drops what is unsent and resets the peer.
  virtual void release_transport(bool reset) noexcept = 0;
  // Everything written has been acknowledged by the peer (closing now loses nothing).
  virtual bool all_acknowledged() const noexcept = 0;
  // What an IoResult's error means (a TLS transport's EPROTO says which TLS failure).
  virtual std::error_code error_for(int error) const noexcept {
    return {error, std::system_category()};
  }
};

}  // namespace netloop
