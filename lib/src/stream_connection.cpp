// StreamConnection: the lifecycle rules (states and their transitions), the output queue
// with water-mark backpressure, handler timers and the idle timeout, written once for
// every transport.
#include "netloop/stream_connection.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cassert>
#include <utility>

#include "netloop/connection_limit.hpp"
#include "netloop/log.hpp"
#include "netloop/result.hpp"

namespace netloop {
namespace {

bool is_reset(int err) { return err == ECONNRESET || err == EPIPE || err == ECONNABORTED; }

CloseInfo info_for(std::error_code ec) {
  return {is_reset(ec.value()) ? CloseReason::reset : CloseReason::error, ec};
}

// More pieces than this go through the output buffer (a transport writes at most this
// many in one gather call).
constexpr size_t kMaxGatherPieces = 64;

}  // namespace

std::string_view to_string(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::local: return "local";
    case CloseReason::peer: return "peer";
    case CloseReason::aborted: return "aborted";
    case CloseReason::reset: return "reset";
    case CloseReason::error: return "error";
    case CloseReason::shutdown: return "shutdown";
    case CloseReason::protocol: return "protocol";
    case CloseReason::idle: return "idle";
    case CloseReason::connect_failed: return "connect_failed";
  }
  return "?";
}

// The default for a Connection that knows no better: a copy it can own. Out of
// descriptors, the peer cannot get the bytes it was promised: reset.
void Connection::send_file(std::string_view head, SharedFd file, uint64_t offset,
                           uint64_t length) {
  Fd copy;
  if (file) copy = Fd(::fcntl(file->get(), F_DUPFD_CLOEXEC, 0));
  if (file && !copy) {
    log_warn("connection {}: cannot duplicate a file descriptor to send: {}", peer_address(),
             last_error().message());
    abort();
    return;
  }
  send_file(head, std::move(copy), offset, length);
}

std::string_view StreamConnection::to_string(State s) noexcept {
  switch (s) {
    case State::open: return "open";
    case State::read_closed: return "read_closed";
    case State::write_closed: return "write_closed";
    case State::flushing: return "flushing";
    case State::lingering: return "lingering";
    case State::closing: return "closing";
    case State::closed: return "closed";
  }
  return "?";
}

StreamConnection::StreamConnection(EventLoop& loop, Transport& transport,
                                   std::unique_ptr<StreamHandler> handler,
                                   const ConnectionOptions& options, const Address& peer,
                                   const Address& local)
    : loop_(loop),
      transport_(transport),
      handler_(std::move(handler)),
      options_(options),
      peer_(peer),
      local_(local) {
  if (options_.low_water > options_.high_water) options_.low_water = options_.high_water;
}

StreamConnection::~StreamConnection() {
  // Normally closed already (finish_close); this covers one that never started. The
  // transport (a derived part) is gone by now: only loop state is touched.
  if (close_timer_) loop_.cancel_timer(close_timer_);
  if (stall_timer_) loop_.cancel_timer(stall_timer_);
  if (idle_timer_) loop_.cancel_timer(idle_timer_);
  for (auto& t : timers_) loop_.cancel_timer(t.loop_id);
  if (limit_) limit_->release();
}

void StreamConnection::attach(ConnectionOwner* owner, ConnectionLimit* limit) noexcept {
  owner_ = owner;
  limit_ = limit;
}

void StreamConnection::become_refusal(std::unique_ptr<StreamHandler> handler,
                                      Duration cap) noexcept {
  assert(!started_ && "become_refusal: the connection has begun");
  handler_ = std::move(handler);
  refusal_ = true;
  if (limit_) std::exchange(limit_, nullptr)->release();  // a refusal holds no budget
  client_slot_.release();
  options_.linger_timeout = std::min(options_.linger_timeout, cap);
  options_.close_timeout = std::min(options_.close_timeout, cap);
}

void StreamConnection::begin() {
  loop_.assert_in_loop_thread();
  started_ = true;
  ++loop_.stats().connections_open;
  last_activity_ = loop_.now();
  update_interest();
  if (owner_) owner_->opened(*this);
  CallbackGuard guard(*this);
  handler_->on_open(*this);
}

// --- Reading -----------------------------------------------------------------------------

void StreamConnection::on_readable() {
  CallbackGuard guard(*this);
  if (state_ == State::lingering) {
    discard_input();
    return;
  }
  if (state_ != State::open && state_ != State::write_closed) return;
  Buffer& scratch = loop_.scratch();
  assert(scratch.empty());
  IoResult r = transport_.read_some(scratch.write_ptr(), scratch.writable());
  if (r.bytes > 0) {
    bytes_in_ += r.bytes;
    loop_.stats().tcp_bytes_in += r.bytes;
    last_activity_ = loop_.now();
    scratch.commit(r.bytes);
    if (input_.empty()) {
      // Fast path: the handler parses straight out of the shared area; only leftovers
      // are copied into the connection's own buffer.
      deliver(scratch);
      if (!scratch.empty()) input_.append(scratch.view());
      scratch.clear();
    } else {
      input_.append(scratch.view());
      scratch.clear();
      deliver(input_);
    }
    if (input_.empty()) {
      if (input_.capacity()) input_.release();
    } else if (input_.size() > options_.max_input && is_open()) {
      log_debug("connection {}: {} unconsumed input bytes exceed the limit of {}",
                peer_address(),
                input_.size(), options_.max_input);
      // Reset: input is left unread (a socket would send one anyway), and the peer
      // should not take the end of the stream for an orderly one.
      decide_close({CloseReason::error, make_error(EMSGSIZE)}, true);
    }
    return;
  }
  if (r.error == 0) {
    input_ended();
  } else if (!r.would_block()) {
    fail(transport_.error_for(r.error));
  }
}

void StreamConnection::input_ended() {
  peer_ended_ = true;
  if (state_ == State::open) {
    state_ = State::read_closed;
    update_interest();
    handler_->on_peer_shutdown(*this, input_);
    if (input_.empty() && input_.capacity()) input_.release();
  } else if (state_ == State::write_closed) {
    update_interest();
    handler_->on_peer_shutdown(*this, input_);
    // Both ends of the stream are written: done, unless the handler closed otherwise.
    if (state_ == State::write_closed) decide_close({CloseReason::peer, {}}, false);
  }
}

void StreamConnection::deliver(Buffer& input) {
  if (!is_open()) return;
  handler_->on_data(*this, input);
}

void StreamConnection::queue_redelivery() {
  if (redeliver_queued_) return;
  redeliver_queued_ = true;
  loop_.defer([this] { redeliver_input(); });
}

void StreamConnection::redeliver_input() {
  redeliver_queued_ = false;
  // Not tied to reading: input buffered before the peer's end of stream is still offered
  // once the handler resumes.
  if (!is_open() || input_.empty() || user_paused_ || backpressure_paused_) return;
  CallbackGuard guard(*this);
  deliver(input_);
  if (input_.empty()) input_.release();
}

// Lingering: our side is done; what the peer still sends is read and dropped, a bounded
// amount per wake-up like any other reader, until its end of stream.
void StreamConnection::discard_input() {
  Buffer& scratch = loop_.scratch();
  for (int i = 0; i < 4; ++i) {
    IoResult r = transport_.read_some(scratch.write_ptr(), scratch.writable());
    if (r.bytes > 0) {
      bytes_in_ += r.bytes;
      loop_.stats().tcp_bytes_in += r.bytes;
      continue;
    }
    if (r.would_block()) return;
    // The peer's end of stream, or a late reset: our side is done either way, no error.
    peer_ended_ = r.error == 0;
    decide_close(close_info_, false);
    return;
  }
}

void StreamConnection::pause_reading() {
  loop_.assert_in_loop_thread();
  user_paused_ = true;
  update_interest();
}

void StreamConnection::resume_reading() {
  loop_.assert_in_loop_thread();
  if (!user_paused_) return;
  user_paused_ = false;
  update_interest();
  // Offer what was left in the input again (the peer may stay silent). Queued even when
  // input_ looks empty: called from on_data on the fast path, the leftover is still in
  // the loop's scratch area and reaches input_ only after on_data returns.
  if (is_open()) queue_redelivery();
}

// --- Writing -----------------------------------------------------------------------------

void StreamConnection::written(size_t n) noexcept {
  if (n == 0) return;
  bytes_out_ += n;
  loop_.stats().tcp_bytes_out += n;
  last_activity_ = loop_.now();
}

// Writes until done or the transport pushes back; false when the connection failed.
bool StreamConnection::write_bytes(const char* data, size_t n, size_t& written, bool more) {
  written = 0;
  while (written < n) {
    IoResult r = transport_.write_some(data + written, n - written, more);
    if (r.bytes > 0) {
      written += r.bytes;
      continue;
    }
    if (r.would_block()) break;
    this->written(written);
    fail(transport_.error_for(r.error ? r.error : EPIPE));
    return false;
  }
  this->written(written);
  return true;
}

// Output was just queued: arm what a backlog needs.
void StreamConnection::queued() {
  drain_pending_ = true;
  watch_for_stall(false);
  peak_output_ = std::max(peak_output_, pending_output());
  after_output_change();
}

void StreamConnection::send(const void* data, size_t n) {
  loop_.assert_in_loop_thread();
  if (!writing_allowed() || n == 0) return;
  const char* p = static_cast<const char*>(data);
  if (!files_.empty()) {  // behind a file: wait in line
    files_.back().after.append(p, n);
    queued_bytes_ += n;
    after_output_change();
    return;
  }
  size_t written = 0;
  if (output_.empty()) {
    if (!write_bytes(p, n, written)) return;
    if (written == n) return;  // the common case: nothing buffered, no interest change
  }
  output_.append(p + written, n - written);
  queued();
}

void StreamConnection::send(std::span<const std::string_view> pieces) {
  loop_.assert_in_loop_thread();
  if (!writing_allowed()) return;
  size_t total = 0;
  for (auto piece : pieces) total += piece.size();
  if (total == 0) return;
  if (has_output() || pieces.size() > kMaxGatherPieces) {  // in line behind the backlog
    for (auto piece : pieces) StreamConnection::send(piece.data(), piece.size());
    return;
  }
  IoResult r = transport_.write_gather(pieces);
  if (r.bytes == 0 && !r.would_block()) {
    fail(transport_.error_for(r.error ? r.error : EPIPE));
    return;
  }
  written(r.bytes);
  if (r.bytes == total) return;
  size_t skip = r.bytes;
  for (auto piece : pieces) {
    if (skip >= piece.size()) {
      skip -= piece.size();
      continue;
    }
    output_.append(piece.data() + skip, piece.size() - skip);
    skip = 0;
  }
  queued();
}

void StreamConnection::send_file(Fd file, uint64_t offset, uint64_t length) {
  send_queued_file({}, QueuedFile{std::move(file), nullptr, offset, length, Buffer()});
}

void StreamConnection::send_file(std::string_view head, Fd file, uint64_t offset,
                                 uint64_t length) {
  send_queued_file(head, QueuedFile{std::move(file), nullptr, offset, length, Buffer()});
}

void StreamConnection::send_file(std::string_view head, SharedFd file, uint64_t offset,
                                 uint64_t length) {
  send_queued_file(head, QueuedFile{Fd(), std::move(file), offset, length, Buffer()});
}

// `head`, then the file: written at once while nothing is queued and the kernel takes it,
// else queued in order behind what is.
void StreamConnection::send_queued_file(std::string_view head, QueuedFile f) {
  loop_.assert_in_loop_thread();
  if (writing_allowed() && !has_output() && f.remaining > 0 && !head.empty()) {
    // `more`: the transport holds the head back for the file's first bytes (MSG_MORE,
    // corked until the file write, which goes without it).
    size_t written = 0;
    if (!write_bytes(head.data(), head.size(), written, true)) return;
    head.remove_prefix(written);
  }
  StreamConnection::send(head.data(), head.size());
  if (!writing_allowed() || f.remaining == 0) return;
  if (!has_output()) {
    bool progressed = false;
    if (!write_file_now(f, progressed)) return;
    if (f.remaining == 0) return;  // all taken at once
  }
  queued_bytes_ += f.remaining;
  files_.push_back(std::move(f));
  queued();
}

// Sends from the file until done or the transport pushes back; false when the connection
// failed (and is closing).
bool StreamConnection::write_file_now(QueuedFile& f, bool& progressed) {
  while (f.remaining > 0) {
    size_t chunk = size_t(std::min<uint64_t>(f.remaining, 1u << 30));
    IoResult r = transport_.write_file(f.fd(), f.offset, chunk);
    if (r.bytes > 0) {
      f.offset += r.bytes;
      f.remaining -= r.bytes;
      written(r.bytes);
      progressed = true;
      continue;
    }
    if (r.would_block()) return true;
    if (r.error == 0) {
      log_warn("connection {}: file ended {} bytes short of what was promised; resetting",
               peer_address(),
               f.remaining);
      decide_close({CloseReason::error, make_error(EIO)}, true);
      return false;
    }
    fail(transport_.error_for(r.error));
    return false;
  }
  return true;
}

// Writes queued output in order until the transport pushes back or nothing is left;
// false when the connection failed.
bool StreamConnection::flush_output(bool& progressed) {
  for (;;) {
    if (!output_.empty()) {
      size_t written = 0;
      if (!write_bytes(output_.data(), output_.size(), written)) return false;
      output_.consume(written);
      if (written) progressed = true;
      if (!output_.empty()) return true;
    }
    if (files_.empty()) return true;
    QueuedFile& f = files_.front();
    uint64_t before = f.remaining;
    if (!write_file_now(f, progressed)) return false;
    queued_bytes_ -= before - f.remaining;
    if (f.remaining > 0) return true;
    // That file is done: what was sent after it is now at the head of the line.
    queued_bytes_ -= f.after.size();
    output_ = std::move(f.after);
    files_.erase(files_.begin());
  }
}

void StreamConnection::on_writable() {
  CallbackGuard guard(*this);
  if (state_ == State::closing || state_ == State::closed) return;
  if (!has_output()) {
    update_interest();
    return;
  }
  bool progressed = false;
  if (!flush_output(progressed)) return;
  after_output_change();
  watch_for_stall(progressed);
  if (has_output()) return;
  output_.release();
  if (files_.capacity()) std::vector<QueuedFile>().swap(files_);
  if (fin_queued_) write_side_finished();
  if (state_ == State::flushing) {
    finish_orderly_close();
    return;
  }
  if (drain_pending_) {
    drain_pending_ = false;
    if (is_open()) handler_->on_drain(*this);
  }
}

void StreamConnection::after_output_change() {
  // Water marks: the state flips only on a crossing, never on every write.
  size_t pending = pending_output();
  if (!backpressure_paused_ && pending >= options_.high_water) {
    backpressure_paused_ = true;
  } else if (backpressure_paused_ && pending <= options_.low_water) {
    backpressure_paused_ = false;
    if (!input_.empty()) queue_redelivery();
  }
  update_interest();
}

void StreamConnection::update_interest() {
  if (state_ == State::closed) return;
  bool read = state_ == State::lingering ||
              ((state_ == State::open || state_ == State::write_closed) && !user_paused_ &&
               !backpressure_paused_);
  bool write = has_output() && (state_ == State::open || state_ == State::read_closed ||
                                state_ == State::flushing);
  if (read == want_read_ && write == want_write_) return;
  want_read_ = read;
  want_write_ = write;
  transport_.want_events(read, write);
}

// Arms the stall timer when output is buffered, pushes it back when a write made
// progress, and drops it once everything is written. Only the backlogged path pays.
void StreamConnection::watch_for_stall(bool progressed) {
  if (!has_output() || options_.write_timeout <= Duration::zero()) {
    if (stall_timer_) loop_.cancel_timer(std::exchange(stall_timer_, {}));
    return;
  }
  if (!stall_timer_) {
    stall_timer_ = loop_.run_after(options_.write_timeout, [this] {
      stall_timer_ = {};
      log_debug("connection {}: {} buffered bytes made no progress for {} ms; resetting",
                peer_address(),
                pending_output(),
                std::chrono::duration_cast<milliseconds>(options_.write_timeout).count());
      ++loop_.stats().write_timeouts;
      decide_close({CloseReason::error, make_error(ETIMEDOUT)}, true);
    });
  } else if (progressed) {
    loop_.restart_timer(stall_timer_, options_.write_timeout);
  }
}

// --- Closing -----------------------------------------------------------------------------

void StreamConnection::shutdown_write() {
  loop_.assert_in_loop_thread();
  if (!writing_allowed()) return;
  fin_queued_ = true;
  if (!has_output()) write_side_finished();
}

// Everything up to our end of stream is written: send it.
void StreamConnection::write_side_finished() {
  fin_queued_ = false;
  transport_.send_end_of_stream();
  if (state_ == State::open) {
    state_ = State::write_closed;
    update_interest();
  } else if (state_ == State::read_closed) {
    decide_close({CloseReason::peer, {}}, false);
  }
}

void StreamConnection::close() { start_close({CloseReason::local, {}}); }

void StreamConnection::close(std::error_code code, std::string_view text) {
  start_close({CloseReason::protocol, code, std::string(text)});
}

void StreamConnection::start_close(CloseInfo info) {
  loop_.assert_in_loop_thread();
  if (!is_open()) return;
  close_info_ = std::move(info);
  state_ = State::flushing;
  fin_queued_ = false;
  if (!has_output()) {
    finish_orderly_close();
    return;
  }
  update_interest();  // stop reading, keep writing
  close_timer_ = loop_.run_after(options_.close_timeout, [this] {
    close_timer_ = {};
    log_debug("connection {}: output not drained within the close timeout; resetting",
              peer_address());
    ++loop_.stats().write_timeouts;
    decide_close({CloseReason::error, make_error(ETIMEDOUT)}, true);
  });
}

// Everything is written. If the peer may still be sending, shut our side down and read
// (discarding) until its end of stream or the linger timeout, so that closing with unread
// input does not reset the connection under a response the peer has yet to read.
void StreamConnection::finish_orderly_close() {
  if (close_timer_) loop_.cancel_timer(std::exchange(close_timer_, {}));
  if (peer_ended_ || options_.linger_timeout <= Duration::zero()) {
    if (peer_ended_ && close_info_.reason == CloseReason::local)
      close_info_.reason = CloseReason::peer;
    decide_close(close_info_, false);
    return;
  }
  state_ = State::lingering;
  transport_.send_end_of_stream();
  close_timer_ = loop_.run_after(options_.linger_timeout, [this] {
    close_timer_ = {};
    decide_close(close_info_, false);
  });
  update_interest();
}

void StreamConnection::abort() {
  loop_.assert_in_loop_thread();
  decide_close({CloseReason::aborted, {}}, true);
}

void StreamConnection::fail(std::error_code ec) { decide_close(info_for(ec), false); }

void StreamConnection::on_transport_error(std::error_code ec) {
  CallbackGuard guard(*this);
  fail(ec);
}

void StreamConnection::fail_unstarted(CloseInfo info, bool tell_handler) {
  assert(!started_);
  quiet_close_ = !tell_handler;
  CallbackGuard guard(*this);
  decide_close(std::move(info), false);
}

// The close is decided: nothing more is read or written. An abort or an error outranks an
// orderly reason decided earlier.
void StreamConnection::decide_close(CloseInfo info, bool reset) {
  if (state_ == State::closed) return;
  if (state_ != State::closing || info.reason == CloseReason::aborted || info.error)
    close_info_ = std::move(info);
  reset_on_release_ = reset_on_release_ || reset;
  state_ = State::closing;
  output_dropped_ = output_dropped_ || has_output();
  output_.clear();
  files_.clear();
  queued_bytes_ = 0;
  update_interest();
  // Inside one of our own callbacks the close completes when the outermost one returns.
  // Otherwise the caller is someone else's code (another connection's handler, a timer,
  // a loop over the owner's connections): finishing here would run our on_close and
  // release us from the owner's table under its feet, so it completes after this batch.
  if (depth_ == 0 && !finish_queued_) {
    finish_queued_ = true;
    loop_.defer([this] {
      finish_queued_ = false;
      if (state_ == State::closing) finish_close();
    });
  }
}

void StreamConnection::request_drain() {
  if (!is_open()) return;
  if (!started_) {  // still in its transport's opening (a TLS handshake): nothing to finish
    decide_close({CloseReason::shutdown, {}}, false);
    return;
  }
  CallbackGuard guard(*this);
  handler_->on_server_draining(*this);
}

bool StreamConnection::delivered_all() const noexcept {
  if (state_ == State::closed) return true;
  if (state_ != State::lingering || has_output()) return false;
  return transport_.all_acknowledged();
}

std::unique_ptr<StreamHandler> StreamConnection::take_unstarted_handler() noexcept {
  assert(!started_ && "take_unstarted_handler: the connection has begun");
  if (started_) return nullptr;
  owner_ = nullptr;
  state_ = State::closed;  // nothing to release: the transport never started
  return std::move(handler_);
}

void StreamConnection::shut_down() noexcept {
  // The owner is the one calling: it keeps the object, and must not be told of the close
  // (it may be going away: an owner destroyed from this connection's own on_close, which
  // runs with the state already closed, is not called back after it).
  owner_ = nullptr;
  if (state_ == State::closed) return;
  // A close already decided (an abort waiting for the end of the batch) keeps its reason.
  if (state_ != State::closing) close_info_ = {CloseReason::shutdown, {}};
  state_ = State::closing;
  output_dropped_ = output_dropped_ || has_output();
  // Asked from inside one of this connection's own handler calls (a client cancelling its
  // keep_connected() from on_data): on_close runs when that call returns, as for any close.
  if (depth_ > 0) return;
  finish_close();
}

void StreamConnection::count_close(CloseReason reason) noexcept {
  LoopStats& st = loop_.stats();
  switch (reason) {
    case CloseReason::local: ++st.closed_local; break;
    case CloseReason::peer: ++st.closed_peer; break;
    case CloseReason::aborted: ++st.closed_aborted; break;
    case CloseReason::reset: ++st.closed_reset; break;
    case CloseReason::error: ++st.closed_error; break;
    case CloseReason::shutdown: ++st.closed_shutdown; break;
    case CloseReason::protocol: ++st.closed_protocol; break;
    case CloseReason::idle: ++st.closed_idle; break;
    case CloseReason::connect_failed: break;  // never opened: the Connector counts it
  }
}

void StreamConnection::finish_close() noexcept {
  if (state_ == State::closed) return;
  state_ = State::closed;
  transport_.release_transport(reset_on_release_);
  if (close_timer_) loop_.cancel_timer(std::exchange(close_timer_, {}));
  if (stall_timer_) loop_.cancel_timer(std::exchange(stall_timer_, {}));
  if (idle_timer_) loop_.cancel_timer(std::exchange(idle_timer_, {}));
  for (auto& t : timers_) loop_.cancel_timer(t.loop_id);
  timers_.clear();
  timers_.shrink_to_fit();
  input_.clear();
  input_.release();
  output_.clear();
  output_.release();
  std::vector<QueuedFile>().swap(files_);
  queued_bytes_ = 0;
  // Before the gauge drops: whoever sees connections_open fall can connect again at once.
  // The handler hears on_close just after, so for that moment the budget's next
  // connection and this handler may both be alive.
  if (limit_) std::exchange(limit_, nullptr)->release();
  client_slot_.release();
  if (started_) {
    loop_.stats().connections_open.sub();
    count_close(close_info_.reason);
  }
  if (started_ || !quiet_close_) {
    record_close(close_info_);
    handler_->on_close(*this, close_info_);
  }
  // The handler's resources go now, unless one of its calls is still on the stack (the
  // owner shutting down from inside a callback).
  if (depth_ == 0) handler_.reset();
  if (owner_) {
    // Destroyed after this iteration: the caller's stack may still reference us.
    if (auto self = owner_->release(*this)) loop_.dispose_later(std::move(self));
  }
}

// --- Timers ------------------------------------------------------------------------------

StreamConnection::HandlerTimer* StreamConnection::find_timer(TimerId id) noexcept {
  for (auto& t : timers_)
    if (t.id == id.value) return &t;
  return nullptr;
}

// Handler timers are named by the connection, not the loop: restart_timer re-arms one
// that fired, which the loop's queue has already forgotten.
TimerId StreamConnection::arm_timer(uint64_t id, Duration delay, Duration repeat) {
  return loop_.start_timer(delay, repeat, [this, id] {
    HandlerTimer* t = find_timer(TimerId{id});
    if (!t) return;
    auto fn = t->fn;  // the callback may cancel (and so erase) its own timer
    CallbackGuard guard(*this);
    if (state_ != State::closed) (*fn)(*this);
  });
}

TimerId StreamConnection::start_timer(Duration delay, Duration repeat, TimerCallback fn) {
  loop_.assert_in_loop_thread();
  if (state_ == State::closed || !fn) return {};
  uint64_t id = next_timer_id_++;
  timers_.push_back({id, arm_timer(id, delay, repeat), repeat,
                     std::make_shared<TimerCallback>(std::move(fn))});
  return TimerId{id};
}

size_t StreamConnection::timers_pending() const noexcept {
  size_t n = idle_timer_ ? 1 : 0;
  for (const auto& t : timers_) n += loop_.timer_pending(t.loop_id) ? 1 : 0;
  return n;
}

bool StreamConnection::cancel_timer(TimerId id) {
  loop_.assert_in_loop_thread();
  HandlerTimer* t = find_timer(id);
  if (!t) return false;
  bool pending = loop_.cancel_timer(t->loop_id);
  timers_.erase(timers_.begin() + (t - timers_.data()));
  return pending;
}

bool StreamConnection::restart_timer(TimerId id, Duration delay) {
  loop_.assert_in_loop_thread();
  HandlerTimer* t = find_timer(id);
  if (!t || state_ == State::closed) return false;
  if (loop_.restart_timer(t->loop_id, delay)) return true;
  t->loop_id = arm_timer(t->id, delay, t->repeat);  // it fired (a one-shot): again
  return false;
}

void StreamConnection::set_idle_timeout(Duration timeout) {
  loop_.assert_in_loop_thread();
  idle_timeout_ = timeout;
  if (timeout <= Duration::zero() || state_ == State::closed) {
    if (idle_timer_) loop_.cancel_timer(std::exchange(idle_timer_, {}));
    return;
  }
  last_activity_ = loop_.now();
  if (!idle_timer_ || !loop_.restart_timer(idle_timer_, timeout))
    idle_timer_ = loop_.run_after(timeout, [this] { on_idle_timer(); });
}

// Lazy: bytes moving only stamp last_activity_; the timer, when it fires, either closes or
// sleeps for what is left of the timeout.
void StreamConnection::on_idle_timer() {
  idle_timer_ = {};
  if (!is_open() || idle_timeout_ <= Duration::zero()) return;
  Duration idle_for = loop_.now() - last_activity_;
  // Output waiting for the peer is not idleness: the write timeout guards a stalled peer.
  if (idle_for < idle_timeout_ || has_output()) {
    if (idle_for >= idle_timeout_) idle_for = Duration::zero();
    idle_timer_ = loop_.run_after(idle_timeout_ - idle_for, [this] { on_idle_timer(); });
    return;
  }
  log_debug("connection {}: idle for {} ms; closing", peer_address(),
            std::chrono::duration_cast<milliseconds>(idle_for).count());
  CallbackGuard guard(*this);
  start_close({CloseReason::idle, make_error(ETIMEDOUT)});
}

}  // namespace netloop
