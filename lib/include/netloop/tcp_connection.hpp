// TcpConnection: one accepted TCP socket driving one stream handler.
//
// Writes go out at once; only what the kernel pushes back is buffered, and only then is
// write interest asked for. Past `high_water` unsent bytes it stops reading from the peer
// until the backlog drains below `low_water`.
#pragma once

#include <memory>
#include <vector>

#include "netloop/event_loop.hpp"
#include "netloop/fd.hpp"
#include "netloop/protocol.hpp"
#include "netloop/timer_set.hpp"

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

class TcpConnection;
class ConnectionLimit;

// Whoever owns live connections (a listener) hears when one has closed, and hands it
// back for disposal.
class ConnectionOwner {
 public:
  virtual std::unique_ptr<TcpConnection> release(TcpConnection& conn) noexcept = 0;

 protected:
  ~ConnectionOwner() = default;
};

class TcpConnection final : public Connection, public Disposable {
 public:
  TcpConnection(EventLoop& loop, Fd fd, const Address& peer, const Address& local,
                std::unique_ptr<StreamHandler> handler, const ConnectionOptions& options);
  ~TcpConnection() override;

  // Registers with the loop and calls on_open; an error means nothing was registered.
  std::error_code start(ConnectionOwner* owner);
  // Closes now (reason shutdown): the owner is going away.
  void shut_down() noexcept;
  // Tells the handler the server is draining (StreamHandler::on_server_draining).
  void request_drain();
  // Nothing left to deliver: closed for writing after an orderly close, and every byte
  // written has been acknowledged by the peer (Linux: SIOCOUTQ), so closing now loses
  // nothing. A drain need not wait for such a connection to finish lingering.
  bool delivered_all() const noexcept;

  void send(const void* data, size_t n) override;
  using Connection::send;
  void send_file(Fd file, uint64_t offset, uint64_t length) override;
  void send_file(std::string_view head, Fd file, uint64_t offset, uint64_t length) override;
  void shutdown_write() override;
  void close() override;
  void abort() override;
  void pause_reading() override;
  void resume_reading() override;
  bool is_open() const noexcept override { return state_ == State::open; }
  size_t pending_output() const noexcept override { return output_.size() + queued_bytes_; }
  bool output_full() const noexcept override { return backpressure_paused_; }
  const Address& peer_address() const noexcept override { return peer_; }
  const Address& local_address() const noexcept override { return local_; }
  TimerId start_timer(Duration delay, Duration repeat, std::function<void()> fn) override;
  bool cancel_timer(TimerId id) override;
  bool restart_timer(TimerId id, Duration delay) override;
  TimePoint now() const noexcept override { return loop_.now(); }

  // Introspection for tests and counters.
  size_t input_capacity() const noexcept { return input_.capacity(); }
  size_t output_capacity() const noexcept { return output_.capacity(); }
  size_t peak_output() const noexcept { return peak_output_; }
  uint64_t bytes_in() const noexcept { return bytes_in_; }
  uint64_t bytes_out() const noexcept { return bytes_out_; }

 private:
  void give_back_limit_slot() noexcept;
  friend class TcpListener;
  enum class State : uint8_t { open, closing, closed };

  void on_io(uint32_t ready);
  void handle_read();
  void handle_write();
  void deliver(Buffer& input);
  void redeliver_input();
  bool write_now(const char* data, size_t n, size_t& written, int flags = 0);
  bool flush_output(bool& progressed);
  bool send_file_now(int file, uint64_t& offset, uint64_t& remaining, bool& progressed);
  bool has_output() const noexcept { return !output_.empty() || !files_.empty(); }
  void finish_orderly_close();
  void discard_input();
  void after_output_change();
  void update_interest();
  void fail(std::error_code ec);
  void reset_and_close(CloseInfo info);
  void request_close(CloseInfo info);
  void finish_close_if_pending();
  void finish_close(CloseInfo info) noexcept;
  void maybe_shutdown_write();
  void watch_for_stall(bool progressed);

  // Marks a stretch of code that may call into the handler: a close requested inside
  // it completes (and on_close runs) only once the outermost guard ends.
  struct CallbackGuard {
    explicit CallbackGuard(TcpConnection& c) : c(c) { ++c.depth_; }
    ~CallbackGuard() {
      if (--c.depth_ == 0 && c.close_pending_) c.finish_close_if_pending();
    }
    TcpConnection& c;
  };

  // Hot fields first, so one read event touches few cache lines: the watcher (whose
  // interest dispatch re-checks), the descriptor, state, buffers and handler.
  EventLoop& loop_;
  IoWatcher watcher_;
  Fd fd_;
  State state_ = State::open;
  bool peer_eof_ = false;
  bool user_paused_ = false;
  bool backpressure_paused_ = false;
  bool close_pending_ = false;
  bool drain_pending_ = false;  // output was pushed back: tell on_drain when it empties
  bool redeliver_queued_ = false;
  bool finish_queued_ = false;
  int depth_ = 0;
  std::unique_ptr<StreamHandler> handler_;
  Buffer input_;   // unconsumed input (empty, and unallocated, while the handler keeps up)
  Buffer output_;  // what the kernel pushed back (ahead of any queued file)
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  size_t peak_output_ = 0;
  ConnectionOptions options_;

  // Cold: files, set-up, close and introspection.
  // Files waiting for the socket, in order; bytes sent after a file wait in its `after`.
  struct QueuedFile {
    Fd file;
    uint64_t offset;
    uint64_t remaining;
    Buffer after;
  };
  std::vector<QueuedFile> files_;  // a vector: empty costs nothing (a deque allocates)
  uint64_t queued_bytes_ = 0;      // file bytes and their `after` bytes not yet written
  bool lingering_ = false;         // closed for writing, reading and discarding until EOF
  bool counted_open_ = false;      // started: counted in the loop's connections_open
  ConnectionLimit* limit_slot_ = nullptr;  // counted in this shared budget until closed
  bool write_shutdown_wanted_ = false;
  bool write_shutdown_done_ = false;
  ConnectionOwner* owner_ = nullptr;
  size_t owner_slot_ = 0;  // index in the owner's table, for O(1) removal
  CloseInfo pending_info_{CloseReason::local, {}};
  TimerId close_timer_;
  TimerId stall_timer_;  // armed while output is buffered (write_timeout)
  TimerSet timers_{loop_};
  Address peer_;
  Address local_;
};

}  // namespace netloop
