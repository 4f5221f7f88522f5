// The protocol handler seam: what a stream handler is told, and what it may do.
//
// Handlers never see descriptors or the poller. A factory makes one handler per
// connection, so per-connection state lives in the handler object.
#pragma once

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <string>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>

#include "netloop/address.hpp"
#include "netloop/buffer.hpp"
#include "netloop/clock.hpp"
#include "netloop/fd.hpp"
#include "netloop/timer_queue.hpp"

// Declared only: handlers that read the PROXY header include netloop/proxy_protocol.hpp.
namespace netloop::proxy_protocol {
struct Header;
}

namespace netloop {

enum class CloseReason : uint8_t {
  local,     // the handler called close(): output flushed, then an orderly close
  peer,      // the peer ended its stream and our side finished (orderly)
  aborted,   // the handler called abort(): output dropped, reset sent
  reset,     // the peer reset the connection (ECONNRESET, EPIPE)
  error,     // another socket error, or a limit exceeded (see CloseInfo::error)
  shutdown,  // the listener or server is going away
  protocol,  // the handler closed for a reason of its own (CloseInfo::error and ::text)
  idle,      // nothing moved either way for the idle timeout (Connection::set_idle_timeout)
  // An outbound connection could not be made (Connector): on_close comes without an
  // on_open before it, CloseInfo::error says why (refused, unreachable, timed out, name
  // not found) and CloseInfo::text names the target.
  connect_failed,
};
std::string_view to_string(CloseReason reason) noexcept;

struct CloseInfo {
  CloseReason reason;
  std::error_code error;  // set for reset, error and timeouts; the handler's own for protocol
  std::string text = {};  // protocol: the handler's words ("request line too long")
};

class EventLoop;
struct TlsInfo;

// A descriptor with shared ownership: closed when its last holder lets it go.
using SharedFd = std::shared_ptr<const Fd>;

// What a stream handler sees of its connection. Every call is for the connection's own
// loop thread (asserted in debug builds); another thread uses conn.loop().post().
class Connection {
 public:
  virtual ~Connection() = default;

  // The loop this connection lives on: post() from other threads, defer(), timers that
  // are not the connection's, the loop's counters.
  virtual EventLoop& loop() const noexcept = 0;

  // Sends bytes: written at once when the kernel takes them, buffered otherwise.
  // Ignored once the connection is closing or its write side is shut down.
  virtual void send(const void* data, size_t n) = 0;
  void send(std::string_view s) { send(s.data(), s.size()); }
  void send(std::span<const std::byte> b) { send(b.data(), b.size()); }
  // Gather send: the pieces in order, in one sendmsg(2) when the kernel takes them (a
  // response head and body that live apart, without joining them first).
  virtual void send(std::span<const std::string_view> pieces) = 0;
  void send(std::initializer_list<std::string_view> pieces) {
    send(std::span<const std::string_view>(pieces.begin(), pieces.size()));
  }
  // Sends `length` bytes of `file` from `offset`, in order after everything sent before
  // it, with sendfile(2) where the platform has it (the bytes never enter user space).
  // The connection owns `file` until then. A file that turns out shorter than `length`
  // resets the connection: the peer was promised those bytes.
  virtual void send_file(Fd file, uint64_t offset, uint64_t length) = 0;
  // send(head) then send_file(file, offset, length), with the head held back for the
  // file's first bytes where the transport can (a response head and its body in one
  // segment rather than a small packet of its own).
  virtual void send_file(std::string_view head, Fd file, uint64_t offset, uint64_t length) = 0;
  // The same from a descriptor the caller shares (a file cache keeps it open): the
  // connection holds a reference until the bytes are sent, and the last holder closes
  // it, so a cached file is sent without a dup(2) and close(2) per response. The
  // default duplicates it and sends the copy; StreamConnection only takes a reference.
  virtual void send_file(std::string_view head, SharedFd file, uint64_t offset, uint64_t length);

  // Half-close: after the buffered output is written, the peer sees end of stream;
  // reading goes on.
  virtual void shutdown_write() = 0;
  // Orderly close: stop reading, write what is buffered, then close (on_close hears
  // CloseReason::local, or peer when the peer had already ended its stream).
  virtual void close() = 0;
  // The same, for a reason of the handler's own: on_close hears CloseReason::protocol
  // with `code` and `text`, and the loop counts it under closed_protocol.
  virtual void close(std::error_code code, std::string_view text) = 0;
  // Abortive close: drop buffered output and reset the connection.
  virtual void abort() = 0;
  // A close of either kind, called from this connection's own callbacks, completes
  // (on_close runs) when that callback returns; called from anywhere else (another
  // connection's handler, a loop timer), after the current dispatch batch: never under
  // the caller's feet. is_open() turns false at once either way.

  // Stops and restarts reading from the peer (input already buffered stays there and is
  // offered again through on_data after resume_reading()).
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;

  virtual bool is_open() const noexcept = 0;  // false once closing or closed
  virtual size_t pending_output() const noexcept = 0;  // bytes not yet taken by the kernel
  // Pending output is past the high-water mark (reading is paused). A handler with more
  // work already in its input (pipelined requests) should stop producing output and
  // leave that input in place: on_data is offered it again once the backlog drains
  // below the low-water mark.
  virtual bool output_full() const noexcept = 0;
  // Bytes received and not yet consumed by the handler (what on_data left in its input).
  // Past ConnectionOptions::max_input the connection fails with EMSGSIZE.
  virtual size_t unconsumed_input() const noexcept = 0;
  virtual const Address& peer_address() const noexcept = 0;
  virtual const Address& local_address() const noexcept = 0;

  // Timers tied to this connection, their callbacks given the connection. A timer stays
  // the connection's until cancel_timer() or the close: restart_timer() moves a pending
  // one and re-arms one that has fired. Both say whether the timer was still pending (as
  // EventLoop's do). All are cancelled when the connection closes.
  using TimerCallback = std::function<void(Connection&)>;
  virtual TimerId start_timer(Duration delay, Duration repeat, TimerCallback fn) = 0;
  virtual bool cancel_timer(TimerId id) = 0;
  virtual bool restart_timer(TimerId id, Duration delay) = 0;
  // Closes the connection (CloseReason::idle) once nothing has been received or written
  // for `timeout`; zero switches it off. Costs one timer, re-armed lazily, not per byte.
  virtual void set_idle_timeout(Duration timeout) = 0;
  virtual TimePoint now() const noexcept = 0;

  // What the TLS handshake settled (version, cipher, ALPN, SNI name), or null when the
  // connection is not TLS. Valid until on_close returns.
  virtual const TlsInfo* tls() const noexcept { return nullptr; }
  // The PROXY protocol header the load balancer sent before the client's bytes
  // (ListenerOptions::proxy_protocol), or null when the listener expects none. When it
  // names the client, peer_address() is already its source; the rest (ALPN, authority,
  // unique ID, SSL facts, custom TLVs) is read here. Valid until on_close returns.
  virtual const proxy_protocol::Header* proxy_header() const noexcept { return nullptr; }
};

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;

  virtual void on_open(Connection&) {}
  // New bytes are in `input`, after whatever earlier calls left there: bytes only ever
  // arrive at the back. Consume what can be parsed (input.consume(n)) and leave the rest
  // for the next call. The input contract:
  //  - Read it (data(), size(), view()) and consume() from the front; nothing else. Never
  //    append, clear, reserve or release it: it may be the loop's shared read area.
  //  - It may be that shared area on one call and the connection's own buffer on the
  //    next: keep offsets between calls, never pointers or views.
  //  - What is left unconsumed is held for you, up to ConnectionOptions::max_input
  //    (conn.unconsumed_input() says how much); past it the connection fails with
  //    EMSGSIZE. A message that may be larger than that (a 1 MiB value under a 1 MiB
  //    max_input) must not wait whole in the input: consume its bytes as they come into
  //    storage of the handler's own (a string reserved to the announced length, a file),
  //    and remember how many are still to come.
  // A loop runs one handler call at a time, so per-loop state shared by handlers needs
  // no lock.
  virtual void on_data(Connection& conn, Buffer& input) = 0;
  // The peer will send nothing more. `input` holds what it sent and on_data left
  // unconsumed (a last line without its terminator, say): take what is complete. By
  // default: finish sending, then close.
  virtual void on_peer_shutdown(Connection& conn, Buffer& input) {
    (void)input;
    conn.close();
  }
  // Output that the kernel had pushed back is now fully written.
  virtual void on_drain(Connection&) {}
  // The server is shutting down gracefully: finish what is in progress (a request being
  // answered), then close; an idle connection should close now. By default: close(),
  // which still writes what is buffered. Connections left open when the server's drain
  // timeout passes are closed with CloseReason::shutdown.
  virtual void on_server_draining(Connection& conn) { conn.close(); }
  // Last call: the connection is closed and why. It must not be used afterwards.
  virtual void on_close(Connection&, const CloseInfo&) {}
};

// Makes the handler of one new connection. Returning null refuses the connection: it is
// closed at once without a word to the peer, and counted (TcpListener's
// stats().factory_refused). To answer before closing (an HTTP 503), return a handler
// that sends its answer in on_open and closes.
using StreamHandlerFactory = std::function<std::unique_ptr<StreamHandler>()>;

}  // namespace netloop
