// TcpConnection: reading into the loop's scratch area, writing at once, buffering only
// what the kernel refuses, water-mark backpressure, and the three kinds of close.
#include "netloop/tcp_connection.hpp"
#include "netloop/tcp_listener.hpp"

#include <algorithm>
#include <cassert>
#include <utility>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#endif

#include "netloop/log.hpp"

namespace netloop {
namespace {

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;  // never SIGPIPE
#else
constexpr int kSendFlags = 0;  // SO_NOSIGPIPE is set on the socket instead
#endif

bool is_reset(int err) { return err == ECONNRESET || err == EPIPE || err == ECONNABORTED; }

CloseInfo info_for(int err) {
  return {is_reset(err) ? CloseReason::reset : CloseReason::error, make_error(err)};
}

}  // namespace

std::string_view to_string(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::local: return "local";
    case CloseReason::peer: return "peer";
    case CloseReason::aborted: return "aborted";
    case CloseReason::reset: return "reset";
    case CloseReason::error: return "error";
    case CloseReason::shutdown: return "shutdown";
  }
  return "?";
}

TcpConnection::TcpConnection(EventLoop& loop, Fd fd, const Address& peer, const Address& local,
                             std::unique_ptr<StreamHandler> handler,
                             const ConnectionOptions& options)
    : loop_(loop),
      watcher_(loop, [this](uint32_t r) { on_io(r); }),
      fd_(std::move(fd)),
      handler_(std::move(handler)),
      options_(options),
      peer_(peer),
      local_(local) {
  if (options_.low_water > options_.high_water) options_.low_water = options_.high_water;
}

TcpConnection::~TcpConnection() {
  // Normally closed already (finish_close); this covers a connection that never started.
  watcher_.stop();
  if (close_timer_) loop_.cancel_timer(close_timer_);
  if (stall_timer_) loop_.cancel_timer(stall_timer_);
}

void TcpConnection::give_back_limit_slot() noexcept {
  if (limit_slot_) std::exchange(limit_slot_, nullptr)->release();
}

std::error_code TcpConnection::start(ConnectionOwner* owner) {
  owner_ = owner;
  int fd = fd_.get();
  if (options_.tcp_nodelay) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
#ifdef SO_NOSIGPIPE
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  if (auto ec = watcher_.start(fd, Interest::read)) return ec;
  ++loop_.stats().connections_open;
  counted_open_ = true;
  CallbackGuard guard(*this);
  handler_->on_open(*this);
  return {};
}

void TcpConnection::on_io(uint32_t ready) {
  CallbackGuard guard(*this);
  if ((ready & ready::error) && watcher_.error()) {  // the poller refused an interest change
    fail(watcher_.error());
    return;
  }
  if (ready & ready::writable) handle_write();
  if (state_ == State::closed) return;
  if (ready & (ready::readable | ready::hangup | ready::error)) {
    if (has(watcher_.interest(), Interest::read)) {
      handle_read();
    } else {
      // Not reading (paused or half-closed): a hangup or error is still final, and left
      // alone it would be reported again on every wait.
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err || (ready & ready::hangup)) fail(make_error(err ? err : EPIPE));
    }
  }
}

void TcpConnection::handle_read() {
  if (lingering_) {
    discard_input();
    return;
  }
  Buffer& scratch = loop_.scratch();
  assert(scratch.empty());
  ssize_t n = ::recv(fd_.get(), scratch.write_ptr(), scratch.writable(), 0);
  if (n > 0) {
    bytes_in_ += size_t(n);
    loop_.stats().tcp_bytes_in += size_t(n);
    scratch.commit(size_t(n));
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
    } else if (input_.size() > options_.max_input && state_ == State::open) {
      log_debug("connection {}: {} unconsumed input bytes exceed the limit of {}",
                peer_, input_.size(), options_.max_input);
      request_close({CloseReason::error, make_error(EMSGSIZE)});
    }
    return;
  }
  if (n == 0) {
    peer_eof_ = true;
    update_interest();
    if (state_ == State::open) handler_->on_peer_shutdown(*this);
    if (state_ != State::closed && write_shutdown_done_)
      request_close({CloseReason::peer, {}});
    else if (state_ == State::closing && !has_output())
      request_close({CloseReason::peer, {}});
    return;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
  fail(last_error());
}

void TcpConnection::deliver(Buffer& input) {
  if (state_ != State::open) return;
  handler_->on_data(*this, input);
}

void TcpConnection::redeliver_input() {
  redeliver_queued_ = false;
  // Not tied to read interest: input buffered before the peer's end of stream is still
  // offered once the handler resumes.
  if (state_ != State::open || input_.empty() || user_paused_ || backpressure_paused_) return;
  CallbackGuard guard(*this);
  deliver(input_);
  if (input_.empty()) input_.release();
}

bool TcpConnection::write_now(const char* data, size_t n, size_t& written, int flags) {
  written = 0;
  while (written < n) {
    ssize_t w = ::send(fd_.get(), data + written, n - written, kSendFlags | flags);
    if (w > 0) {
      written += size_t(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    fail(w < 0 ? last_error() : make_error(EPIPE));
    return false;
  }
  return true;
}

void TcpConnection::send(const void* data, size_t n) {
  if (state_ != State::open || write_shutdown_wanted_ || n == 0) return;
  const char* p = static_cast<const char*>(data);
  if (!files_.empty()) {  // behind a file: wait in line
    files_.back().after.append(p, n);
    queued_bytes_ += n;
    after_output_change();
    return;
  }
  size_t written = 0;
  if (output_.empty()) {
    if (!write_now(p, n, written)) return;
    bytes_out_ += written;
    loop_.stats().tcp_bytes_out += written;
    if (written == n) return;  // the common case: nothing buffered, no interest change
  }
  output_.append(p + written, n - written);
  drain_pending_ = true;
  watch_for_stall(false);
  peak_output_ = std::max(peak_output_, output_.size());
  after_output_change();
}

void TcpConnection::send_file(Fd file, uint64_t offset, uint64_t length) {
  if (state_ != State::open || write_shutdown_wanted_ || length == 0) return;
  bool progressed = false;
  if (!has_output()) {
    if (!send_file_now(file.get(), offset, length, progressed)) return;
    if (length == 0) return;  // all taken at once
  }
  files_.push_back({std::move(file), offset, length, Buffer()});
  queued_bytes_ += length;
  drain_pending_ = true;
  watch_for_stall(false);
  peak_output_ = std::max(peak_output_, pending_output());
  after_output_change();
}

void TcpConnection::send_file(std::string_view head, Fd file, uint64_t offset, uint64_t length) {
#ifdef MSG_MORE
  if (state_ == State::open && !write_shutdown_wanted_ && !has_output() && length > 0 &&
      !head.empty()) {
    // MSG_MORE: the kernel holds the head back for the file's first bytes (corked until
    // the sendfile below, which sends without it).
    size_t written = 0;
    if (!write_now(head.data(), head.size(), written, MSG_MORE)) return;
    bytes_out_ += written;
    loop_.stats().tcp_bytes_out += written;
    head.remove_prefix(written);
  }
#endif
  send(head);
  send_file(std::move(file), offset, length);
}

// Sends from `file` until done or the kernel pushes back; false when the connection
// failed (and is closing).
bool TcpConnection::send_file_now(int file, uint64_t& offset, uint64_t& remaining,
                                  bool& progressed) {
  while (remaining > 0) {
    size_t chunk = size_t(std::min<uint64_t>(remaining, 1u << 30));
#ifdef __linux__
    off_t off = off_t(offset);
    ssize_t n = ::sendfile(fd_.get(), file, &off, chunk);
#else
    // No portable sendfile: through a stack buffer (the loop's scratch may hold the input
    // being parsed while a handler calls send_file).
    char buf[16 * 1024];
    ssize_t n = ::pread(file, buf, std::min(chunk, sizeof buf), off_t(offset));
    if (n > 0) {
      size_t written = 0;
      if (!write_now(buf, size_t(n), written)) return false;
      n = ssize_t(written);
      if (written == 0) errno = EAGAIN, n = -1;
    }
#endif
    if (n > 0) {
      offset += uint64_t(n);
      remaining -= uint64_t(n);
      bytes_out_ += uint64_t(n);
      loop_.stats().tcp_bytes_out += uint64_t(n);
      progressed = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n == 0) {
      log_warn("connection {}: file ended {} bytes short of what was promised; resetting",
               peer_, remaining);
      reset_and_close({CloseReason::error, make_error(EIO)});
      return false;
    }
    fail(last_error());
    return false;
  }
  return true;
}

// Writes queued output in order until the kernel pushes back or nothing is left; false
// when the connection failed.
bool TcpConnection::flush_output(bool& progressed) {
  for (;;) {
    if (!output_.empty()) {
      size_t written = 0;
      if (!write_now(output_.data(), output_.size(), written)) return false;
      bytes_out_ += written;
      loop_.stats().tcp_bytes_out += written;
      output_.consume(written);
      if (written) progressed = true;
      if (!output_.empty()) return true;
    }
    if (files_.empty()) return true;
    QueuedFile& f = files_.front();
    uint64_t before = f.remaining;
    if (!send_file_now(f.file.get(), f.offset, f.remaining, progressed)) return false;
    queued_bytes_ -= before - f.remaining;
    if (f.remaining > 0) return true;
    // That file is done: what was sent after it is now at the head of the line.
    queued_bytes_ -= f.after.size();
    output_ = std::move(f.after);
    files_.erase(files_.begin());
  }
}

void TcpConnection::handle_write() {
  if (!has_output()) {
    update_interest();
    return;
  }
  bool progressed = false;
  if (!flush_output(progressed)) return;
  after_output_change();
  watch_for_stall(progressed);
  if (!has_output()) {
    output_.release();
    if (files_.capacity()) std::vector<QueuedFile>().swap(files_);
    maybe_shutdown_write();
    if (state_ == State::closing) {
      finish_orderly_close();
      return;
    }
    if (drain_pending_) {
      drain_pending_ = false;
      CallbackGuard guard(*this);
      if (state_ == State::open) handler_->on_drain(*this);
    }
  }
}

void TcpConnection::after_output_change() {
  // Water marks: the state flips only on a crossing, never on every write.
  size_t pending = pending_output();
  if (!backpressure_paused_ && pending >= options_.high_water) {
    backpressure_paused_ = true;
  } else if (backpressure_paused_ && pending <= options_.low_water) {
    backpressure_paused_ = false;
    if (!input_.empty() && !redeliver_queued_) {
      redeliver_queued_ = true;
      loop_.defer([this] { redeliver_input(); });
    }
  }
  update_interest();
}

void TcpConnection::update_interest() {
  if (state_ == State::closed) return;
  Interest want = Interest::none;
  if (state_ == State::open && !peer_eof_ && !user_paused_ && !backpressure_paused_)
    want = want | Interest::read;
  if (lingering_ && state_ == State::closing) want = want | Interest::read;
  if (has_output()) want = want | Interest::write;
  watcher_.set_interest(want);
}

void TcpConnection::pause_reading() {
  user_paused_ = true;
  update_interest();
}

void TcpConnection::resume_reading() {
  if (!user_paused_) return;
  user_paused_ = false;
  update_interest();
  // Offer what was left in the input buffer again (the socket may stay silent). Queued
  // even when input_ looks empty: called from on_data on the fast path, the leftover is
  // still in the loop's scratch area and reaches input_ only after on_data returns.
  if (!redeliver_queued_ && state_ == State::open) {
    redeliver_queued_ = true;
    loop_.defer([this] { redeliver_input(); });
  }
}

// Arms the stall timer when output is buffered, pushes it back when a write made
// progress, and drops it once everything is written. Only the backlogged path pays.
void TcpConnection::watch_for_stall(bool progressed) {
  if (!has_output() || options_.write_timeout <= Duration::zero()) {
    if (stall_timer_) loop_.cancel_timer(std::exchange(stall_timer_, {}));
    return;
  }
  if (!stall_timer_) {
    stall_timer_ = loop_.run_after(options_.write_timeout, [this] {
      stall_timer_ = {};
      log_debug("connection {}: {} buffered bytes made no progress for {} ms; resetting",
                peer_, pending_output(),
                std::chrono::duration_cast<milliseconds>(options_.write_timeout).count());
      ++loop_.stats().write_timeouts;
      reset_and_close({CloseReason::error, make_error(ETIMEDOUT)});
    });
  } else if (progressed) {
    loop_.restart_timer(stall_timer_, options_.write_timeout);
  }
}

void TcpConnection::shutdown_write() {
  if (state_ != State::open) return;
  write_shutdown_wanted_ = true;
  maybe_shutdown_write();
}

void TcpConnection::maybe_shutdown_write() {
  if (!write_shutdown_wanted_ || write_shutdown_done_ || has_output()) return;
  write_shutdown_done_ = true;
  ::shutdown(fd_.get(), SHUT_WR);
  if (peer_eof_) request_close({CloseReason::peer, {}});
}

void TcpConnection::close() {
  if (state_ != State::open) return;
  state_ = State::closing;
  if (!has_output()) {
    finish_orderly_close();
  } else {
    update_interest();  // stop reading, keep writing
    close_timer_ = loop_.run_after(options_.close_timeout, [this] {
      close_timer_ = {};
      log_debug("connection {}: output not drained within the close timeout; resetting",
                peer_);
      ++loop_.stats().write_timeouts;
      reset_and_close({CloseReason::error, make_error(ETIMEDOUT)});
    });
  }
}

// Everything is written. If the peer may still be sending, shut our side down and read
// (discarding) until its end of stream or the linger timeout, so that closing with unread
// input does not reset the connection under a response the peer has yet to read.
void TcpConnection::finish_orderly_close() {
  CloseInfo info{peer_eof_ ? CloseReason::peer : CloseReason::local, {}};
  if (peer_eof_ || lingering_ || options_.linger_timeout <= Duration::zero()) {
    request_close(info);
    return;
  }
  lingering_ = true;
  ::shutdown(fd_.get(), SHUT_WR);
  write_shutdown_done_ = true;
  if (close_timer_) loop_.cancel_timer(close_timer_);
  close_timer_ = loop_.run_after(options_.linger_timeout, [this] {
    close_timer_ = {};
    request_close({CloseReason::local, {}});
  });
  update_interest();
}

void TcpConnection::discard_input() {
  Buffer& scratch = loop_.scratch();
  for (int i = 0; i < 4; ++i) {  // a bounded amount per wake-up, like any other reader
    ssize_t n = ::recv(fd_.get(), scratch.write_ptr(), scratch.writable(), 0);
    if (n > 0) {
      bytes_in_ += size_t(n);
      loop_.stats().tcp_bytes_in += size_t(n);
      continue;
    }
    if (n == 0) {
      request_close({CloseReason::local, {}});
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      request_close({CloseReason::local, {}});  // our side is done: a late reset is no error
    }
    return;
  }
}

void TcpConnection::abort() { reset_and_close({CloseReason::aborted, {}}); }

void TcpConnection::reset_and_close(CloseInfo info) {
  if (state_ == State::closed) return;
  // SO_LINGER with a zero timeout makes close() send a reset and drop unsent data.
  linger lg{1, 0};
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  output_.clear();
  files_.clear();
  queued_bytes_ = 0;
  request_close(info);
}

void TcpConnection::fail(std::error_code ec) {
  if (state_ == State::closed) return;
  output_.clear();
  files_.clear();
  queued_bytes_ = 0;
  state_ = State::closing;
  request_close(info_for(ec.value()));
}

void TcpConnection::request_close(CloseInfo info) {
  if (state_ == State::closed) return;
  state_ = State::closing;
  if (!close_pending_ || info.reason == CloseReason::aborted || info.error) pending_info_ = info;
  close_pending_ = true;
  // Inside one of our own callbacks the close completes when the outermost one returns.
  // Otherwise the caller is someone else's code (another connection's handler, a timer,
  // a loop over the owner's connections): finishing here would run our on_close and
  // release us from the owner's table under its feet, so it completes after this batch.
  if (depth_ == 0 && !finish_queued_) {
    finish_queued_ = true;
    loop_.defer([this] {
      finish_queued_ = false;
      finish_close_if_pending();
    });
  }
}

void TcpConnection::finish_close_if_pending() {
  if (close_pending_) finish_close(pending_info_);
}

void TcpConnection::request_drain() {
  if (state_ != State::open) return;
  CallbackGuard guard(*this);
  handler_->on_server_draining(*this);
}

bool TcpConnection::delivered_all() const noexcept {
  if (state_ == State::closed) return true;
  if (!lingering_ || has_output()) return false;
#if defined(__linux__) && defined(SIOCOUTQ)
  int unacked = 0;
  if (::ioctl(fd_.get(), SIOCOUTQ, &unacked) == 0) return unacked == 0;
#endif
  return true;
}

void TcpConnection::shut_down() noexcept {
  if (state_ == State::closed) return;
  owner_ = nullptr;  // the owner is the one calling: it keeps the object
  finish_close({CloseReason::shutdown, {}});
}

void TcpConnection::finish_close(CloseInfo info) noexcept {
  if (state_ == State::closed) return;
  state_ = State::closed;
  close_pending_ = false;
  watcher_.stop();
  timers_.cancel_all();
  if (close_timer_) loop_.cancel_timer(std::exchange(close_timer_, {}));
  if (stall_timer_) loop_.cancel_timer(std::exchange(stall_timer_, {}));
  fd_.reset();
  input_.clear();
  input_.release();
  output_.clear();
  output_.release();
  std::vector<QueuedFile>().swap(files_);
  queued_bytes_ = 0;
  // Before the gauge drops: whoever sees connections_open fall can connect again at once
  // (in practice: the counters are relaxed atomics and the new connection comes through
  // the kernel). The handler hears on_close just after, so for that moment the budget's
  // next connection and this handler may both be alive.
  give_back_limit_slot();
  if (counted_open_) {
    LoopStats& st = loop_.stats();
    st.connections_open.sub();
    switch (info.reason) {
      case CloseReason::local: ++st.closed_local; break;
      case CloseReason::peer: ++st.closed_peer; break;
      case CloseReason::aborted: ++st.closed_aborted; break;
      case CloseReason::reset: ++st.closed_reset; break;
      case CloseReason::error: ++st.closed_error; break;
      case CloseReason::shutdown: ++st.closed_shutdown; break;
    }
  }
  handler_->on_close(*this, info);
  // The handler's resources go now, unless one of its calls is still on the stack (the
  // owner shutting down from inside a callback); the connection object itself may still
  // be referenced until the iteration ends.
  if (depth_ == 0) handler_.reset();
  if (owner_) {
    // Destroyed after this iteration: the caller's stack may still reference us.
    if (auto self = owner_->release(*this)) loop_.dispose_later(std::move(self));
  }
}

TimerId TcpConnection::start_timer(Duration delay, Duration repeat, std::function<void()> fn) {
  if (state_ == State::closed) return {};
  return timers_.start(delay, repeat, [this, fn = std::move(fn)] {
    CallbackGuard guard(*this);
    fn();
  });
}

bool TcpConnection::cancel_timer(TimerId id) { return timers_.cancel(id); }

bool TcpConnection::restart_timer(TimerId id, Duration delay) { return timers_.restart(id, delay); }

}  // namespace netloop
