// netloop::testing::MemoryConnection: drives any StreamHandler without sockets or a loop.
//
// Feed it bytes in whatever pieces you like, read what the handler sent, make the peer
// stop reading (so output backs up past the high-water mark) and read again, advance a
// fake clock to fire the handler's timers, and see how and why the connection closed.
// The rules are TcpConnection's: a close asked for inside a callback completes when that
// callback returns (asked for from another connection's callback, when the outermost
// callback returns, as the loop's deferred work would), input left unconsumed is offered again after resume_reading() or
// once output drains below the low-water mark, output is flushed before an orderly close.
//
//   MemoryConnection c(std::make_unique<MyHandler>());
//   c.open();
//   c.feed("PING\r\n");
//   CHECK(c.take_output() == "+PONG\r\n");
//   c.advance(seconds(30));           // idle timers fire
//   CHECK(c.closed());
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "netloop/address.hpp"
#include "netloop/buffer.hpp"
#include "netloop/protocol.hpp"
#include "netloop/testing/fake_clock.hpp"
#include "netloop/timer_queue.hpp"

namespace netloop::testing {

struct MemoryOptions {
  size_t high_water = 256 * 1024;  // pending output that makes output_full() true
  size_t low_water = 64 * 1024;    // ...and at which input is offered again
  size_t max_input = 1024 * 1024;  // unconsumed input past which the connection fails
  Address peer = Address::ipv4_loopback(40000);
  Address local = Address::ipv4_loopback(8080);
};

class MemoryConnection final : public Connection {
 public:
  explicit MemoryConnection(std::unique_ptr<StreamHandler> handler, MemoryOptions options = {});
  ~MemoryConnection() override;
  MemoryConnection(const MemoryConnection&) = delete;
  MemoryConnection& operator=(const MemoryConnection&) = delete;

  // --- The peer's side: driving the handler -------------------------------------------
  void open();                        // on_open (feed() opens first if needed)
  void feed(std::string_view bytes);  // bytes arrive: on_data, unless paused or closed
  // The same bytes, arriving `piece` bytes at a time.
  void feed_in_pieces(std::string_view bytes, size_t piece);
  void peer_shutdown();  // the peer's end of stream: on_peer_shutdown
  void peer_reset();     // the peer resets the connection: on_close(reset)
  void server_drain();   // the server starts a graceful drain: on_server_draining
  // The peer stops (false) or resumes (true) reading. While it does not read, what the
  // handler sends stays pending and counts toward the water marks.
  void set_peer_reading(bool reading);
  // The peer reads up to `n` pending bytes (it may still be "not reading" otherwise).
  void peer_reads(size_t n = SIZE_MAX);

  // The fake clock: moves it forward, firing every timer that falls due, in order.
  void advance(Duration d) { clock_.advance(d); }

  // --- What the peer observed ---------------------------------------------------------
  const std::string& output() const noexcept { return received_; }  // bytes the peer read
  std::string take_output();                                         // ...and forget them
  size_t pending() const noexcept { return pending_.size(); }        // sent, not yet read
  size_t send_calls() const noexcept { return send_calls_; }         // send() and send_file()
  bool opened() const noexcept { return opened_; }
  bool closed() const noexcept { return close_info_.has_value(); }
  const std::optional<CloseInfo>& close_info() const noexcept { return close_info_; }
  bool write_shut_down() const noexcept { return write_shut_down_; }  // the peer saw EOF
  bool reading_paused() const noexcept { return user_paused_; }
  size_t unconsumed_input() const noexcept { return input_.size(); }
  size_t timers_pending() const noexcept { return clock_.timers().size(); }
  StreamHandler& handler() noexcept { return *handler_; }

  // --- Connection (what the handler sees) ---------------------------------------------
  void send(const void* data, size_t n) override;
  using Connection::send;
  void send_file(Fd file, uint64_t offset, uint64_t length) override;
  using Connection::send_file;
  void shutdown_write() override;
  void close() override;
  void abort() override;
  void pause_reading() override;
  void resume_reading() override;
  bool is_open() const noexcept override { return state_ == State::open; }
  size_t pending_output() const noexcept override { return pending_.size(); }
  bool output_full() const noexcept override { return backpressured_; }
  const Address& peer_address() const noexcept override { return options_.peer; }
  const Address& local_address() const noexcept override { return options_.local; }
  TimerId start_timer(Duration delay, Duration repeat, std::function<void()> fn) override;
  bool cancel_timer(TimerId id) override;
  bool restart_timer(TimerId id, Duration delay) override;
  TimePoint now() const noexcept override { return clock_.now(); }

 private:
  enum class State : uint8_t { open, closing, closed };
  struct Guard;

  void deliver();
  void after_callbacks();
  void written();
  void request_close(CloseInfo info);
  void finish_close();

  std::unique_ptr<StreamHandler> handler_;
  MemoryOptions options_;
  State state_ = State::open;
  bool opened_ = false;
  bool peer_eof_ = false;
  bool peer_reading_ = true;
  bool user_paused_ = false;
  bool backpressured_ = false;
  bool redeliver_ = false;
  bool drain_wanted_ = false;
  bool write_shutdown_wanted_ = false;
  bool write_shut_down_ = false;
  int depth_ = 0;
  size_t send_calls_ = 0;
  std::optional<CloseInfo> pending_close_;
  std::optional<CloseInfo> close_info_;
  Buffer input_;
  std::string pending_;   // sent by the handler, not yet read by the peer
  std::string received_;  // read by the peer
  FakeClock clock_;
  std::vector<TimerId> timer_ids_;
};

}  // namespace netloop::testing
