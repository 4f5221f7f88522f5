// TlsLayer: one connection's TLS session over a nonblocking socket, as TcpConnection
// drives it. Internal: handlers never see it; TcpListener and Connector make one from a
// context and hand it to the connection before start().
//
// The socket is the session's own I/O (OpenSSL reads and writes the descriptor itself:
// no copy through memory buffers, and kTLS possible). Every call is nonblocking and says
// what it waits for: a read that needs the socket writable (a TLS 1.3 key update to
// answer) or a write that needs it readable is remembered, and TcpConnection asks the
// poller for that instead of what the connection wanted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "netloop/tls.hpp"
#include "netloop/transport.hpp"

namespace netloop {

class TlsLayer {
 public:
  enum class Step : uint8_t { done, want_read, want_write, failed };

  virtual ~TlsLayer() = default;

  // One step of the handshake; on `failed`, failure() says why.
  virtual Step handshake() = 0;
  // After a failed handshake or I/O: the error (tls_category) and OpenSSL's words.
  virtual std::error_code failure() const noexcept = 0;
  virtual const std::string& failure_text() const noexcept = 0;
  virtual const TlsInfo& info() const noexcept = 0;
  virtual bool is_client() const noexcept = 0;
  virtual Duration handshake_timeout() const noexcept = 0;
  // The handshake ran out of time: counted, and failure() says so.
  virtual void handshake_timed_out() noexcept = 0;

  // As Transport's calls. A TLS failure is reported as EPROTO, and failure() says which.
  // read(): bytes 0 with error 0 is the peer's close_notify; an end without one is
  // TlsErrc::truncated.
  virtual IoResult read(void* into, size_t n) = 0;
  virtual IoResult write(const void* data, size_t n) = 0;
  virtual IoResult write_gather(std::span<const std::string_view> pieces) = 0;
  virtual IoResult write_file(int fd, uint64_t offset, size_t n) = 0;
  // Our close_notify, once (best effort: the socket's own end of stream follows it);
  // nothing after a failure.
  virtual void send_close_notify() noexcept = 0;

  // The last read could not go on until the socket is writable, or the last write until
  // it is readable.
  virtual bool read_needs_write() const noexcept = 0;
  virtual bool write_needs_read() const noexcept = 0;
  // A read now would return something the poller cannot announce: the last read filled
  // its buffer with more left inside OpenSSL, or found an end after its bytes (held for
  // the next read), or application data came with the handshake. Never true for a
  // partial record waiting for the rest from the socket (that would spin).
  virtual bool has_buffered_input() const noexcept = 0;
};

// The session for one accepted or connected socket (the descriptor stays the caller's).
// `server_name`: what a client sends as SNI and checks the certificate against (a host
// name or an address; empty: no SNI, no name check).
std::unique_ptr<TlsLayer> make_server_layer(TlsServerContext& ctx, int fd);
// `session_key` names the server for session resumption (its name and address): the last
// session it gave is offered again.
std::unique_ptr<TlsLayer> make_client_layer(TlsClientContext& ctx, int fd,
                                            const std::string& server_name,
                                            const std::string& session_key);
}  // namespace netloop
