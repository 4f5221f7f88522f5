// StreamConnection: a connection's lifecycle as one explicit state machine, written once
// and run by every stream transport (TcpConnection's socket, the in-memory test pipe).
//
//            peer's end of stream              our end of stream written
//   open ──────────────────────────▶ read_closed ─────────────────────────┐
//    │  └──── shutdown_write(), flushed ──▶ write_closed ── peer's end ───▶│
//    │ close()                                                          closing ──▶ closed
//    ▼                     all written, peer still sending                 ▲
//   flushing ───────────────────────────────────────────▶ lingering ───────┘
//    (output left to write; not reading)     (our side shut; reading and discarding until
//                                             the peer's end or linger_timeout)
//
// Any state but closed goes to closing on abort(), a transport error or a timeout. In
// closing the close is decided and completes (on_close) when the outermost handler call
// returns, or after the current dispatch batch when asked for from outside. Flow control
// (the water marks, pause_reading) and the output queue sit beside the state, not in it.
#pragma once

#include <memory>
#include <vector>

#include "netloop/client_slot.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/fd.hpp"
#include "netloop/protocol.hpp"
#include "netloop/transport.hpp"

namespace netloop {

struct ConnectionOptions {
  size_t high_water = 256 * 1024;  // unsent bytes that pause reading
  size_t low_water = 64 * 1024;    // ...and that resume it
  size_t max_input = 1024 * 1024;  // unconsumed input past which the connection fails
  bool tcp_nodelay = true;
  // After close(), how long buffered output may take to drain before the connection is
  // reset instead (a peer that stops reading must not hold it forever).
  Duration close_timeout = seconds(30);
  // How long buffered output may go without any progress before the connection is reset:
  // a peer that sends but never reads cannot hold its buffers forever. Zero disables it.
  Duration write_timeout = seconds(60);
  // After an orderly close with the peer still sending, how long to go on reading (and
  // discarding) once our side is shut down: closing with unread input makes the kernel
  // send a reset, which can destroy a response the peer has not read yet (an HTTP error
  // answered before the request body arrived). Zero closes at once.
  Duration linger_timeout = seconds(5);
};

class ConnectionLimit;
class StreamConnection;

// Whoever owns live connections (a listener) hears when one has closed, and hands it
// back for disposal.
class ConnectionOwner {
 public:
  virtual std::unique_ptr<Disposable> release(StreamConnection& conn) noexcept = 0;
  // The connection has opened (its transport's opening, a TLS handshake, is done): just
  // before the handler's on_open.
  virtual void opened(StreamConnection&) noexcept {}
  // A transport stage has named the client (a PROXY header: peer_address() is now the
  // client's): may the connection go on? False closes it unopened, without a word to its
  // handler; the owner may instead have made it a refusal (become_refusal) and say true.
  virtual bool admit(StreamConnection&) noexcept { return true; }

 protected:
  ~ConnectionOwner() = default;
};

class StreamConnection : public Connection, public Disposable {
 public:
  enum class State : uint8_t {
    open,          // reading and writing
    read_closed,   // the peer ended its stream; we may still write
    write_closed,  // our end of stream is written; still reading
    flushing,      // close() asked: not reading, writing what is buffered
    lingering,     // our side shut; reading and discarding until the peer's end
    closing,       // the close is decided; on_close runs when no handler call is on the stack
    closed,
  };
  static std::string_view to_string(State s) noexcept;

  ~StreamConnection() override;
  StreamConnection(const StreamConnection&) = delete;
  StreamConnection& operator=(const StreamConnection&) = delete;

  // --- For the owner (a listener) -------------------------------------------------------
  // Who hears of the close, and the shared budget this connection counts in until then.
  void attach(ConnectionOwner* owner, ConnectionLimit* limit) noexcept;
  // The client's count (ClientConnectionLimit) this connection holds until it closes.
  void hold_client_slot(ClientSlot slot) noexcept { client_slot_ = std::move(slot); }
  // Before it opens: it answers with `handler` instead (a refusal, an HTTP 503), counts in
  // no connection budget, and gets at most `cap` to linger and to flush its answer.
  void become_refusal(std::unique_ptr<StreamHandler> handler, Duration cap) noexcept;
  void mark_refusal() noexcept { refusal_ = true; }  // made as a refusal (the owner's word)
  bool is_refusal() const noexcept { return refusal_; }
  size_t owner_index() const noexcept { return owner_index_; }  // the owner's bookkeeping
  void set_owner_index(size_t i) noexcept { owner_index_ = i; }
  // Closes now (reason shutdown): the owner is going away.
  void shut_down() noexcept;
  // The handler of a connection that never began (its transport could not start): the
  // owner tells it what happened, since the connection never will.
  std::unique_ptr<StreamHandler> take_unstarted_handler() noexcept;
  // Tells the handler the server is draining (StreamHandler::on_server_draining).
  void request_drain();
  // Nothing left to deliver: lingering with everything written and acknowledged by the
  // peer, so closing now loses nothing. A drain need not wait for such a connection.
  bool delivered_all() const noexcept;
  State state() const noexcept { return state_; }
  // It opened: the handler heard on_open (a TLS connection whose handshake failed never did).
  bool began() const noexcept { return started_; }

  // --- Connection -----------------------------------------------------------------------
  EventLoop& loop() const noexcept override { return loop_; }
  void send(const void* data, size_t n) override;
  void send(std::span<const std::string_view> pieces) override;
  using Connection::send;
  void send_file(Fd file, uint64_t offset, uint64_t length) override;
  void send_file(std::string_view head, Fd file, uint64_t offset, uint64_t length) override;
  void send_file(std::string_view head, SharedFd file, uint64_t offset, uint64_t length) override;
  void shutdown_write() override;
  void close() override;
  void close(std::error_code code, std::string_view text) override;
  void abort() override;
  void pause_reading() override;
  void resume_reading() override;
  bool is_open() const noexcept override {
    return state_ == State::open || state_ == State::read_closed || state_ == State::write_closed;
  }
  size_t pending_output() const noexcept override { return output_.size() + queued_bytes_; }
  bool output_full() const noexcept override { return backpressure_paused_; }
  size_t unconsumed_input() const noexcept override { return input_.size(); }
  const Address& peer_address() const noexcept override { return peer_; }
  const Address& local_address() const noexcept override { return local_; }
  TimerId start_timer(Duration delay, Duration repeat, TimerCallback fn) override;
  bool cancel_timer(TimerId id) override;
  bool restart_timer(TimerId id, Duration delay) override;
  void set_idle_timeout(Duration timeout) override;
  TimePoint now() const noexcept override { return loop_.now(); }

  // Introspection for tests and counters.
  size_t input_capacity() const noexcept { return input_.capacity(); }
  size_t output_capacity() const noexcept { return output_.capacity(); }
  size_t peak_output() const noexcept { return peak_output_; }
  uint64_t bytes_in() const noexcept { return bytes_in_; }
  uint64_t bytes_out() const noexcept { return bytes_out_; }
  bool reading_paused_by_handler() const noexcept { return user_paused_; }
  // The handler's timers still pending, the idle timeout's included.
  size_t timers_pending() const noexcept;

 protected:
  StreamConnection(EventLoop& loop, Transport& transport, std::unique_ptr<StreamHandler> handler,
                   const ConnectionOptions& options, const Address& peer, const Address& local);

  // What the transport reports. begin(): it is ready (counted open; on_open runs).
  void begin();
  void on_readable();
  void on_writable();
  void on_transport_error(std::error_code ec);
  // The transport could not begin (a TLS handshake failed): the connection closes, and its
  // handler hears on_close (a client's connect_failed) only when `tell_handler`.
  void fail_unstarted(CloseInfo info, bool tell_handler);
  // A close before begin() (a listener going away during a TLS handshake) is not told to
  // the handler, which never opened: for accepted connections with an opening stage.
  void close_quietly_until_begun() noexcept { quiet_close_ = true; }
  // A stage named the client: the owner's word on it (ConnectionOwner::admit).
  bool admitted_by_owner() noexcept { return !owner_ || owner_->admit(*this); }
  const ConnectionOptions& options() const noexcept { return options_; }
  // The close dropped output that was never written: the peer must not take the end
  // for a whole stream (TLS: no close_notify then).
  bool output_dropped() const noexcept { return output_dropped_; }
  StreamHandler& handler_ref() noexcept { return *handler_; }
  // Told how the connection ended, just before the handler is (the in-memory transport
  // records it for tests).
  virtual void record_close(const CloseInfo&) noexcept {}

 private:
  struct HandlerTimer {
    uint64_t id;
    TimerId loop_id;
    Duration repeat;
    std::shared_ptr<TimerCallback> fn;  // shared: a callback may cancel its own timer
  };
  struct QueuedFile {  // a file waiting for the transport; bytes sent after it wait in `after`
    Fd file;            // owned (send_file(Fd)), or
    SharedFd shared;    // a reference to a descriptor someone else keeps open
    uint64_t offset;
    uint64_t remaining;
    Buffer after;
    int fd() const noexcept { return shared ? shared->get() : file.get(); }
  };

  // Marks a stretch of code that may call into the handler: a close requested inside
  // it completes (and on_close runs) only once the outermost guard ends.
  struct CallbackGuard {
    explicit CallbackGuard(StreamConnection& c) : c(c) { ++c.depth_; }
    ~CallbackGuard() {
      if (--c.depth_ == 0 && c.state_ == State::closing) c.finish_close();
    }
    StreamConnection& c;
  };

  bool writing_allowed() const noexcept {
    return (state_ == State::open || state_ == State::read_closed) && !fin_queued_;
  }
  bool has_output() const noexcept { return !output_.empty() || !files_.empty(); }
  void deliver(Buffer& input);
  void redeliver_input();
  void queue_redelivery();
  void input_ended();
  void discard_input();
  bool write_bytes(const char* data, size_t n, size_t& written, bool more = false);
  bool write_file_now(QueuedFile& f, bool& progressed);
  void send_queued_file(std::string_view head, QueuedFile f);
  bool flush_output(bool& progressed);
  void queued();
  void written(size_t n) noexcept;
  void after_output_change();
  void update_interest();
  void watch_for_stall(bool progressed);
  void write_side_finished();
  void start_close(CloseInfo info);
  void finish_orderly_close();
  void fail(std::error_code ec);
  void decide_close(CloseInfo info, bool reset);
  void finish_close() noexcept;
  void count_close(CloseReason reason) noexcept;
  void on_idle_timer();
  HandlerTimer* find_timer(TimerId id) noexcept;
  TimerId arm_timer(uint64_t id, Duration delay, Duration repeat);

  // Hot fields first, so one read event touches few cache lines.
  EventLoop& loop_;
  Transport& transport_;
  State state_ = State::open;
  bool peer_ended_ = false;  // the peer's end of stream was read (whatever the state)
  bool user_paused_ = false;
  bool backpressure_paused_ = false;
  bool drain_pending_ = false;  // output was pushed back: tell on_drain when it empties
  bool fin_queued_ = false;     // shutdown_write() asked: our end of stream follows the output
  bool redeliver_queued_ = false;
  bool finish_queued_ = false;
  bool reset_on_release_ = false;
  bool started_ = false;  // counted in the loop's connections_open
  bool quiet_close_ = false;
  bool output_dropped_ = false;  // a close before begin() is not told to the handler
  bool refusal_ = false;         // answers a refused connection (become_refusal)
  bool want_read_ = false;
  bool want_write_ = false;
  int depth_ = 0;
  std::unique_ptr<StreamHandler> handler_;
  Buffer input_;   // unconsumed input (empty, and unallocated, while the handler keeps up)
  Buffer output_;  // what the transport pushed back (ahead of any queued file)
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  TimePoint last_activity_{};
  size_t peak_output_ = 0;
  ConnectionOptions options_;

  // Cold: files, timers, close and introspection.
  std::vector<QueuedFile> files_;  // a vector: empty costs nothing (a deque allocates)
  uint64_t queued_bytes_ = 0;      // file bytes and their `after` bytes not yet written
  CloseInfo close_info_{CloseReason::local, {}};  // why, once closing (or flushing)
  TimerId close_timer_;  // flushing: close_timeout; lingering: linger_timeout
  TimerId stall_timer_;  // armed while output is buffered (write_timeout)
  TimerId idle_timer_;
  Duration idle_timeout_{};
  std::vector<HandlerTimer> timers_;
  uint64_t next_timer_id_ = 1;
  ConnectionOwner* owner_ = nullptr;
  size_t owner_index_ = 0;
  ConnectionLimit* limit_ = nullptr;
  ClientSlot client_slot_;  // released with limit_
  Address peer_;
  Address local_;
};

}  // namespace netloop
