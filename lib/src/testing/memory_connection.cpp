// MemoryConnection: TcpConnection's rules for a handler, with a string for a socket and a
// fake clock for the loop.
#include "netloop/testing/memory_connection.hpp"

#include <algorithm>
#include <vector>
#include <cerrno>
#include <unistd.h>

#include "netloop/result.hpp"

namespace netloop::testing {

namespace {

// Like the loop's deferred work: a close asked for from someone else's callback (another
// connection's handler broadcasting, say) completes after the outermost callback of any
// MemoryConnection on this thread returns, never under the caller's feet.
thread_local int t_callbacks = 0;
thread_local std::vector<MemoryConnection*> t_deferred;

}  // namespace

// Marks a call into the handler: closes and re-deliveries asked for inside it happen when
// the outermost one returns, as on a real connection.
struct MemoryConnection::Guard {
  explicit Guard(MemoryConnection& c) : c(c) {
    ++c.depth_;
    ++t_callbacks;
  }
  ~Guard() {
    --t_callbacks;
    if (--c.depth_ == 0) c.after_callbacks();
    if (t_callbacks == 0) run_deferred();
  }
  static void run_deferred() {
    while (!t_deferred.empty()) {
      MemoryConnection* next = t_deferred.front();
      t_deferred.erase(t_deferred.begin());
      next->after_callbacks();
    }
  }
  MemoryConnection& c;
};

MemoryConnection::MemoryConnection(std::unique_ptr<StreamHandler> handler, MemoryOptions options)
    : handler_(std::move(handler)), options_(options) {
  if (options_.low_water > options_.high_water) options_.low_water = options_.high_water;
}

MemoryConnection::~MemoryConnection() {
  std::erase(t_deferred, this);
  // Like a listener going away: a connection still open is closed with reason shutdown.
  if (opened_ && state_ != State::closed) {
    pending_close_ = CloseInfo{CloseReason::shutdown, {}};
    finish_close();
  }
}

void MemoryConnection::open() {
  if (opened_) return;
  opened_ = true;
  Guard g(*this);
  handler_->on_open(*this);
}

void MemoryConnection::feed(std::string_view bytes) {
  open();
  if (state_ != State::open || peer_eof_ || bytes.empty()) return;
  input_.append(bytes);
  if (!user_paused_ && !backpressured_) deliver();
}

void MemoryConnection::feed_in_pieces(std::string_view bytes, size_t piece) {
  if (piece == 0) piece = 1;
  for (size_t i = 0; i < bytes.size(); i += piece) feed(bytes.substr(i, piece));
}

void MemoryConnection::deliver() {
  if (state_ != State::open || input_.empty()) return;
  {
    Guard g(*this);
    handler_->on_data(*this, input_);
    if (input_.size() > options_.max_input && state_ == State::open)
      request_close({CloseReason::error, make_error(EMSGSIZE)});
  }
  if (input_.empty()) input_.release();
}

void MemoryConnection::after_callbacks() {
  // Runs with no handler call on the stack. A re-delivery's own guard brings us back here
  // when it ends, so whatever it queues is handled then.
  if (pending_close_ && state_ != State::closed) {
    finish_close();
  } else if (redeliver_) {
    redeliver_ = false;
    if (state_ == State::open && !user_paused_ && !backpressured_) deliver();
  }
}

void MemoryConnection::peer_shutdown() {
  open();
  if (peer_eof_ || state_ == State::closed) return;
  peer_eof_ = true;
  {
    Guard g(*this);
    if (state_ == State::open) handler_->on_peer_shutdown(*this);
    if (state_ != State::closed && (write_shut_down_ || (state_ == State::closing && pending_.empty())))
      request_close({CloseReason::peer, {}});
  }
}

void MemoryConnection::peer_reset() {
  if (state_ == State::closed) return;
  pending_.clear();
  request_close({CloseReason::reset, make_error(ECONNRESET)});
}

void MemoryConnection::set_peer_reading(bool reading) {
  peer_reading_ = reading;
  if (reading) peer_reads();
}

void MemoryConnection::peer_reads(size_t n) {
  if (state_ == State::closed) return;
  n = std::min(n, pending_.size());
  received_.append(pending_, 0, n);
  pending_.erase(0, n);
  written();
}

// Water marks and what follows from output having been read.
void MemoryConnection::written() {
  if (!backpressured_ && pending_.size() >= options_.high_water) {
    backpressured_ = true;
  } else if (backpressured_ && pending_.size() <= options_.low_water) {
    backpressured_ = false;
    if (!input_.empty()) redeliver_ = true;
  }
  if (pending_.empty()) {
    Guard g(*this);
    if (write_shutdown_wanted_ && !write_shut_down_) {
      write_shut_down_ = true;
      if (peer_eof_) request_close({CloseReason::peer, {}});
    }
    if (state_ == State::closing) {
      request_close({peer_eof_ ? CloseReason::peer : CloseReason::local, {}});
    } else if (drain_wanted_ && state_ == State::open) {
      drain_wanted_ = false;
      handler_->on_drain(*this);
    }
  } else if (depth_ == 0) {
    after_callbacks();
  }
}

void MemoryConnection::send(const void* data, size_t n) {
  ++send_calls_;
  if (state_ != State::open || write_shutdown_wanted_ || n == 0) return;
  const char* p = static_cast<const char*>(data);
  if (peer_reading_ && pending_.empty()) {
    received_.append(p, n);  // "the kernel took it all": nothing buffered, no on_drain
    return;
  }
  pending_.append(p, n);
  drain_wanted_ = true;
  if (!backpressured_ && pending_.size() >= options_.high_water) backpressured_ = true;
}

void MemoryConnection::send_file(Fd file, uint64_t offset, uint64_t length) {
  if (state_ != State::open || write_shutdown_wanted_ || length == 0) return;
  --send_calls_;  // counted once, by the send() below
  std::string bytes(size_t(length), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t r = ::pread(file.get(), bytes.data() + got, bytes.size() - got, off_t(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += size_t(r);
  }
  if (got < bytes.size()) {
    // As on a socket: the peer was promised `length` bytes, so the connection is reset.
    pending_.clear();
    request_close({CloseReason::error, make_error(EIO)});
    return;
  }
  send(bytes.data(), bytes.size());
}

void MemoryConnection::shutdown_write() {
  if (state_ != State::open) return;
  write_shutdown_wanted_ = true;
  if (pending_.empty()) {
    write_shut_down_ = true;
    if (peer_eof_) request_close({CloseReason::peer, {}});
  }
}

void MemoryConnection::close() {
  if (state_ != State::open) return;
  state_ = State::closing;
  if (pending_.empty()) request_close({peer_eof_ ? CloseReason::peer : CloseReason::local, {}});
}

void MemoryConnection::abort() {
  if (state_ == State::closed) return;
  pending_.clear();
  request_close({CloseReason::aborted, {}});
}

void MemoryConnection::request_close(CloseInfo info) {
  if (state_ == State::closed) return;
  state_ = State::closing;
  if (!pending_close_ || info.reason == CloseReason::aborted || info.error) pending_close_ = info;
  if (depth_ > 0) return;  // our own callback: completes when it returns
  if (t_callbacks > 0) {   // someone else's: after the outermost callback, like loop.defer
    if (std::find(t_deferred.begin(), t_deferred.end(), this) == t_deferred.end())
      t_deferred.push_back(this);
    return;
  }
  after_callbacks();
}

void MemoryConnection::server_drain() {
  if (state_ != State::open) return;
  Guard g(*this);
  handler_->on_server_draining(*this);
}

void MemoryConnection::finish_close() {
  state_ = State::closed;
  for (TimerId id : timer_ids_) clock_.timers().cancel(id);
  timer_ids_.clear();
  close_info_ = pending_close_;
  input_.clear();
  write_shut_down_ = true;  // the peer sees the end of the stream either way
  handler_->on_close(*this, *close_info_);
}

void MemoryConnection::pause_reading() { user_paused_ = true; }

void MemoryConnection::resume_reading() {
  if (!user_paused_) return;
  user_paused_ = false;
  redeliver_ = true;
  if (depth_ == 0) after_callbacks();
}

TimerId MemoryConnection::start_timer(Duration delay, Duration repeat, std::function<void()> fn) {
  if (state_ == State::closed) return {};
  // Forget timers that have run, so a long test does not grow the list.
  std::erase_if(timer_ids_, [this](TimerId id) { return !clock_.timers().pending(id); });
  TimerId id = clock_.timers().add(clock_.now() + delay, repeat, [this, fn = std::move(fn)] {
    Guard g(*this);
    fn();
  });
  timer_ids_.push_back(id);
  return id;
}

bool MemoryConnection::cancel_timer(TimerId id) { return clock_.timers().cancel(id); }

bool MemoryConnection::restart_timer(TimerId id, Duration delay) {
  return clock_.timers().restart(id, clock_.now() + delay);
}

std::string MemoryConnection::take_output() {
  std::string out;
  out.swap(received_);
  return out;
}

}  // namespace netloop::testing
