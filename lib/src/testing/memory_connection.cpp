// MemoryConnection: StreamConnection's rules over a string pipe, on a MemoryLoop. Only the
// transport is written here: what the peer sent waits in `inbound_` until the connection
// reads it, what the connection writes is "taken by the kernel" while the peer reads.
#include "netloop/testing/memory_connection.hpp"

#include "../unconnected_connection.hpp"

#include <algorithm>
#include <cerrno>
#include <unistd.h>

#include "netloop/result.hpp"

namespace netloop::testing {

MemoryConnection::MemoryConnection(std::unique_ptr<StreamHandler> handler, MemoryOptions options)
    : detail::OwnedMemoryLoop{std::make_unique<MemoryLoop>()},
      StreamConnection(owned->loop(), *this, std::move(handler), options, options.peer,
                       options.local),
      memory_loop_(*owned),
      memory_options_(options) {
  memory_loop_.attach(this);
}

MemoryConnection::MemoryConnection(MemoryLoop& loop, std::unique_ptr<StreamHandler> handler,
                                   MemoryOptions options)
    : detail::OwnedMemoryLoop{},
      StreamConnection(loop.loop(), *this, std::move(handler), options, options.peer,
                       options.local),
      memory_loop_(loop),
      memory_options_(options) {
  memory_loop_.attach(this);
}

MemoryConnection::~MemoryConnection() {
  if (opened_ && !closed()) shut_down();
  settle();  // deferred work that names this connection runs while it still exists
  memory_loop_.detach(this);
}

// --- The peer's side ---------------------------------------------------------------------

void MemoryConnection::open() {
  MemoryLoop::Driving driving(memory_loop_);
  if (opened_) return;
  opened_ = true;
  begin();
}

void MemoryConnection::feed(std::string_view bytes) {
  MemoryLoop::Driving driving(memory_loop_);
  open();
  if (closed() || peer_sent_end_ || peer_reset_ || bytes.empty()) return;
  inbound_.append(bytes);
}

void MemoryConnection::feed_in_pieces(std::string_view bytes, size_t piece) {
  if (piece == 0) piece = 1;
  for (size_t i = 0; i < bytes.size(); i += piece) feed(bytes.substr(i, piece));
}

void MemoryConnection::peer_shutdown() {
  MemoryLoop::Driving driving(memory_loop_);
  open();
  if (peer_sent_end_ || closed()) return;
  peer_sent_end_ = true;
}

void MemoryConnection::peer_reset() {
  MemoryLoop::Driving driving(memory_loop_);
  if (closed()) return;
  peer_reset_ = true;
  inbound_.clear();
  // As a poller reports an error whatever the interest: heard even while not reading.
  on_transport_error(make_error(ECONNRESET));
}

void MemoryConnection::server_drain() {
  MemoryLoop::Driving driving(memory_loop_);
  request_drain();
}

void MemoryConnection::set_peer_reading(bool reading) {
  MemoryLoop::Driving driving(memory_loop_);
  peer_reading_ = reading;
}

void MemoryConnection::peer_reads(size_t n) {
  credit_ = n;
  settle();
  credit_ = 0;  // it read what was pending; later output waits again
}

std::string MemoryConnection::take_output() {
  std::string out;
  out.swap(received_);
  return out;
}

// --- What the handler calls (counted, then the shared rules) -----------------------------

void MemoryConnection::send(const void* data, size_t n) {
  ++send_calls_;
  StreamConnection::send(data, n);
}

void MemoryConnection::send(std::span<const std::string_view> pieces) {
  ++send_calls_;
  StreamConnection::send(pieces);
}

void MemoryConnection::send_file(Fd file, uint64_t offset, uint64_t length) {
  ++send_calls_;
  StreamConnection::send_file(std::move(file), offset, length);
}

void MemoryConnection::send_file(std::string_view head, Fd file, uint64_t offset,
                                 uint64_t length) {
  ++send_calls_;
  StreamConnection::send_file(head, std::move(file), offset, length);
}

// Called by the test itself rather than from a callback, these complete at once (a
// socket connection would finish them after the current dispatch batch).
void MemoryConnection::close() {
  StreamConnection::close();
  if (memory_loop_.idle()) settle();
}

void MemoryConnection::close(std::error_code code, std::string_view text) {
  StreamConnection::close(code, text);
  if (memory_loop_.idle()) settle();
}

void MemoryConnection::abort() {
  StreamConnection::abort();
  if (memory_loop_.idle()) settle();
}

void MemoryConnection::shutdown_write() {
  StreamConnection::shutdown_write();
  if (memory_loop_.idle()) settle();
}

void MemoryConnection::resume_reading() {
  StreamConnection::resume_reading();
  if (memory_loop_.idle()) settle();
}

// --- The loop's side: level-triggered events ---------------------------------------------

bool MemoryConnection::pump() {
  if (!opened_ || released_) return false;
  if (read_wanted_ && (!inbound_.empty() || peer_sent_end_)) {
    on_readable();
    return true;
  }
  if (write_wanted_ && room() > 0) {
    on_writable();
    return true;
  }
  return false;
}

size_t MemoryConnection::room() const noexcept { return peer_reading_ ? SIZE_MAX : credit_; }

void MemoryConnection::took(size_t n) noexcept {
  if (!peer_reading_) credit_ -= std::min(credit_, n);
}

// --- Transport ---------------------------------------------------------------------------

IoResult MemoryConnection::read_some(void* into, size_t n) {
  if (peer_reset_) return {0, ECONNRESET};
  if (!inbound_.empty()) {
    size_t take = std::min(n, inbound_.size());
    inbound_.copy(static_cast<char*>(into), take);
    inbound_.erase(0, take);
    return {take, 0};
  }
  if (peer_sent_end_) return {0, 0};
  return {0, EAGAIN};
}

IoResult MemoryConnection::write_some(const void* data, size_t n, bool) {
  if (peer_reset_) return {0, EPIPE};
  size_t take = std::min(n, room());
  if (take == 0) return {0, EAGAIN};
  received_.append(static_cast<const char*>(data), take);
  took(take);
  return {take, 0};
}

IoResult MemoryConnection::write_gather(std::span<const std::string_view> pieces) {
  size_t total = 0;
  for (auto piece : pieces) {
    IoResult r = write_some(piece.data(), piece.size(), false);
    total += r.bytes;
    if (r.bytes < piece.size()) return total ? IoResult{total, 0} : r;
  }
  return {total, 0};
}

IoResult MemoryConnection::write_file(int fd, uint64_t offset, size_t n) {
  if (peer_reset_) return {0, EPIPE};
  size_t take = std::min({n, room(), size_t(256 * 1024)});
  if (take == 0) return {0, EAGAIN};
  std::string bytes(take, '\0');
  for (;;) {
    ssize_t r = ::pread(fd, bytes.data(), take, off_t(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return {0, errno};
    if (r == 0) return {0, 0};  // the file ended early
    received_.append(bytes.data(), size_t(r));
    took(size_t(r));
    return {size_t(r), 0};
  }
}

void MemoryConnection::send_end_of_stream() noexcept {
  if (end_sent_) return;
  end_sent_ = true;
  // Everything written has been read by then (room() is what the peer reads).
  if (memory_options_.peer_ends_after_ours) peer_sent_end_ = true;
}

void MemoryConnection::want_events(bool read, bool write) {
  read_wanted_ = read;
  write_wanted_ = write;
}

void MemoryConnection::release_transport(bool reset) noexcept {
  released_ = true;
  reset_sent_ = reset;
  end_sent_ = true;  // the peer sees the end of the stream either way
}

CloseInfo fail_connect(MemoryLoop& loop, StreamHandler& handler, std::error_code error,
                       const Address& target) {
  UnconnectedConnection stand_in(loop.loop(), target);
  CloseInfo info{CloseReason::connect_failed, error,
                 "connect to " + target.to_string() + ": " + error.message()};
  handler.on_close(stand_in, info);
  loop.settle();  // what the handler set off (a deferred reconnect, say) runs now
  return info;
}

}  // namespace netloop::testing
