// netloop::testing::MemoryConnection: drives any StreamHandler without sockets.
//
// It is a StreamConnection like TcpConnection, with a string pipe for a socket: the same
// state machine, backpressure, close, write-stall and linger rules run, not a copy of
// them. Feed it bytes in whatever pieces you like, read what the handler sent, make the
// peer stop reading (so output backs up past the high-water mark) and read again, move
// the clock to fire timers, and see how and why the connection closed. Each driving call
// returns once everything it set off has run (MemoryLoop::settle).
//
//   MemoryConnection c(std::make_unique<MyHandler>());  // on a MemoryLoop of its own
//   c.open();
//   c.feed("PING\r\n");
//   CHECK(c.take_output() == "+PONG\r\n");
//   c.advance(seconds(30));           // idle timers fire
//   CHECK(c.closed());
//
// Connections that share state (a chat room, a store with expiry) share one MemoryLoop,
// so one clock: MemoryConnection a(loop, factory()), b(loop, factory()).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "netloop/address.hpp"
#include "netloop/stream_connection.hpp"
#include "netloop/testing/memory_loop.hpp"

namespace netloop::testing {

struct MemoryOptions : ConnectionOptions {
  Address peer = Address::ipv4_loopback(40000);
  Address local = Address::ipv4_loopback(8080);
  // The peer answers our end of stream with its own once it has read everything, as
  // most clients do (so an orderly close does not linger). False: it keeps its side
  // open until peer_shutdown(), and the linger timeout applies.
  bool peer_ends_after_ours = true;
};

namespace detail {
struct OwnedMemoryLoop {  // a base, so that the loop is built before the connection
  std::unique_ptr<MemoryLoop> owned;
};
}  // namespace detail

class MemoryConnection final : private detail::OwnedMemoryLoop,
                               public StreamConnection,
                               private Transport {
 public:
  // On a MemoryLoop of its own.
  explicit MemoryConnection(std::unique_ptr<StreamHandler> handler, MemoryOptions options = {});
  // On a shared one, which must outlive it.
  MemoryConnection(MemoryLoop& loop, std::unique_ptr<StreamHandler> handler,
                   MemoryOptions options = {});
  // Like a listener going away: a connection still open is closed with reason shutdown.
  ~MemoryConnection() override;

  // --- The peer's side: driving the handler -------------------------------------------
  void open();                        // on_open (feed() opens first if needed)
  void feed(std::string_view bytes);  // bytes arrive: on_data, unless not reading
  // The same bytes, arriving `piece` bytes at a time.
  void feed_in_pieces(std::string_view bytes, size_t piece);
  void peer_shutdown();  // the peer's end of stream: on_peer_shutdown once it is read
  void peer_reset();     // the peer resets the connection: on_close(reset)
  void server_drain();   // the server starts a graceful drain: on_server_draining
  // The peer stops (false) or resumes (true) reading. While it does not read, what the
  // handler sends stays pending and counts toward the water marks.
  void set_peer_reading(bool reading);
  // The peer reads up to `n` pending bytes (it may still be "not reading" otherwise).
  void peer_reads(size_t n = SIZE_MAX);

  // Moves the clock (this connection's loop's) forward: MemoryLoop::advance.
  void advance(Duration d) { memory_loop_.advance(d); }
  MemoryLoop& memory_loop() noexcept { return memory_loop_; }

  // --- What the peer observed ---------------------------------------------------------
  const std::string& output() const noexcept { return received_; }  // bytes the peer read
  std::string take_output();                                         // ...and forget them
  size_t pending() const noexcept { return pending_output(); }  // sent, not yet read
  // Sent by the peer and not yet read by the connection (it is not reading: paused, or
  // its output is full): what a socket's receive queue would hold.
  size_t unread() const noexcept { return inbound_.size(); }
  size_t send_calls() const noexcept { return send_calls_; }  // send() and send_file()
  bool opened() const noexcept { return opened_; }
  bool closed() const noexcept { return state() == State::closed; }
  const std::optional<CloseInfo>& close_info() const noexcept { return close_info_; }
  bool write_shut_down() const noexcept { return end_sent_; }  // the peer saw end of stream
  bool reset_sent() const noexcept { return reset_sent_; }    // the peer saw a reset
  bool reading_paused() const noexcept { return reading_paused_by_handler(); }
  StreamHandler& handler() noexcept { return handler_ref(); }

  // --- Connection: the shared rules, with the send calls counted, and what the test
  // calls itself (not from a callback) completing at once.
  void send(const void* data, size_t n) override;
  void send(std::span<const std::string_view> pieces) override;
  using Connection::send;
  void send_file(Fd file, uint64_t offset, uint64_t length) override;
  void send_file(std::string_view head, Fd file, uint64_t offset, uint64_t length) override;
  void close() override;
  void close(std::error_code code, std::string_view text) override;
  void abort() override;
  void shutdown_write() override;
  void resume_reading() override;

 private:
  friend class MemoryLoop;

  // One level-triggered event, if the peer has made one ready; false when idle.
  bool pump();
  void settle() { memory_loop_.settle(); }
  size_t room() const noexcept;

  // Transport: the string pipe.
  IoResult read_some(void* into, size_t n) override;
  IoResult write_some(const void* data, size_t n, bool more) override;
  IoResult write_gather(std::span<const std::string_view> pieces) override;
  IoResult write_file(int fd, uint64_t offset, size_t n) override;
  void send_end_of_stream() noexcept override;
  void want_events(bool read, bool write) override;
  void release_transport(bool reset) noexcept override;
  bool all_acknowledged() const noexcept override { return true; }
  void took(size_t n) noexcept;
  void record_close(const CloseInfo& info) noexcept override { close_info_ = info; }

  MemoryLoop& memory_loop_;
  MemoryOptions memory_options_;
  bool opened_ = false;
  bool peer_reading_ = true;
  bool peer_sent_end_ = false;   // peer_shutdown(): its end of stream follows its bytes
  bool peer_reset_ = false;
  bool end_sent_ = false;
  bool reset_sent_ = false;
  bool released_ = false;
  bool read_wanted_ = false;
  bool write_wanted_ = false;
  size_t credit_ = 0;  // bytes the peer reads while "not reading" (peer_reads)
  size_t send_calls_ = 0;
  std::optional<CloseInfo> close_info_;
  std::string inbound_;   // sent by the peer, not yet read by the connection
  std::string received_;  // read by the peer
};

// A client handler is tested the same way: MemoryConnection::open() is its on_open, as
// a Connector calls it once connected. This is the other outcome: what a Connector does
// with a handler whose connect failed, on_close(CloseReason::connect_failed, `error`)
// with no on_open before it, for testing a client's failure path (the reconnect it
// schedules, the error it reports). `target` is the stand-in connection's peer_address().
// Returns the CloseInfo the handler was given.
CloseInfo fail_connect(MemoryLoop& loop, StreamHandler& handler, std::error_code error,
                       const Address& target = Address::ipv4_loopback(6379));

}  // namespace netloop::testing
