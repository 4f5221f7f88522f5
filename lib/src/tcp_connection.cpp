// TcpConnection: the socket side of a stream connection: nonblocking recv/send/sendmsg/
// sendfile, poller events mapped onto StreamConnection's, and the socket's own close.
#include "netloop/tcp_connection.hpp"

#include <algorithm>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#endif

#include "netloop/log.hpp"
#include "netloop/result.hpp"
#include "proxy_stage.hpp"
#include "tls/tls_layer.hpp"

namespace netloop {
namespace {

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;  // never SIGPIPE
#else
constexpr int kSendFlags = 0;  // SO_NOSIGPIPE is set on the socket instead
#endif

// A syscall's -1 as an IoResult: EWOULDBLOCK reads as EAGAIN.
IoResult failed() noexcept {
  int err = errno;
  return {0, err == EWOULDBLOCK ? EAGAIN : err};
}

}  // namespace

TcpConnection::TcpConnection(EventLoop& loop, Fd fd, const Address& peer, const Address& local,
                             std::unique_ptr<StreamHandler> handler,
                             const ConnectionOptions& options)
    : StreamConnection(loop, *this, std::move(handler), options, peer, local),
      watcher_(loop, [this](uint32_t r) { on_io(r); }),
      fd_(std::move(fd)) {}

TcpConnection::~TcpConnection() {
  watcher_.stop();
  if (handshake_timer_) loop().cancel_timer(handshake_timer_);
}

void TcpConnection::use_tls(std::unique_ptr<TlsLayer> layer) noexcept { tls_ = std::move(layer); }

const TlsInfo* TcpConnection::tls() const noexcept {
  return tls_ && tls_ready_ ? &tls_->info() : nullptr;
}

Result<void> TcpConnection::start() {
  int fd = fd_.get();
  if (options().tcp_nodelay) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
#ifdef SO_NOSIGPIPE
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  if (auto r = watcher_.start(fd, Interest::read); !r) return r.error();
  if (proxy_) {
    start_proxy_stage();  // then open_transport()
    return {};
  }
  open_transport();
  return {};
}

void TcpConnection::open_transport() {
  if (!tls_) {
    begin();
    return;
  }
  handshaking_ = true;
  if (!tls_->is_client()) close_quietly_until_begun();
  Duration timeout = tls_->handshake_timeout();
  if (handshake_cap_ > Duration::zero()) timeout = std::min(timeout, handshake_cap_);
  handshake_timer_ = loop().run_after(timeout, [this] {
    handshake_timer_ = {};
    if (!handshaking_) return;
    tls_->handshake_timed_out();
    handshake_failed();
  });
  drive_handshake();  // a client speaks first
}

// --- TLS -----------------------------------------------------------------------------------

void TcpConnection::drive_handshake() {
  switch (tls_->handshake()) {
    case TlsLayer::Step::want_read:
      watcher_.set_interest(Interest::read);
      return;
    case TlsLayer::Step::want_write:
      watcher_.set_interest(Interest::write);
      return;
    case TlsLayer::Step::failed:
      handshake_failed();
      return;
    case TlsLayer::Step::done:
      break;
  }
  handshaking_ = false;
  tls_ready_ = true;
  if (handshake_timer_) loop().cancel_timer(std::exchange(handshake_timer_, {}));
  // Closed while handshaking (a drain): it never opens, and its handler is not told.
  if (state() != State::open) return;
  begin();  // on_open; the connection says what it wants through want_events()
  // Application data that came with the handshake's last flight is already read.
  if (conn_reads_ && tls_->has_buffered_input()) queue_tls_read();
}

// An accepted connection's handler is never told (it never opened); a client's hears a
// connect_failed close naming the TLS failure.
void TcpConnection::handshake_failed() {
  if (handshake_timer_) loop().cancel_timer(std::exchange(handshake_timer_, {}));
  handshaking_ = false;
  watcher_.set_interest(Interest::none);
  std::error_code ec = tls_->failure();
  std::string text = "TLS handshake with " + peer_address().to_string() + " failed: " +
                     tls_->failure_text();
  log_debug("{}", text);
  bool client = tls_->is_client();
  fail_unstarted({client ? CloseReason::connect_failed : CloseReason::error, ec, std::move(text)},
                 client);
}

// Socket interest: what the connection wants, except where the session waits for the
// other direction (a write that must first read, a read that must first write).
void TcpConnection::apply_tls_interest() {
  if (state() == State::closed) return;
  // A read waiting to write is retried only while the connection reads (not paused).
  bool read = (conn_reads_ && !tls_->read_needs_write()) || tls_->write_needs_read();
  bool write = (conn_writes_ && !tls_->write_needs_read()) ||
               (conn_reads_ && tls_->read_needs_write());
  watcher_.set_interest((read ? Interest::read : Interest::none) |
                        (write ? Interest::write : Interest::none));
}

// Plaintext (or whole records) the session already holds: the poller will not say so.
void TcpConnection::queue_tls_read() {
  if (tls_read_queued_) return;
  tls_read_queued_ = true;
  loop().defer([this] {
    tls_read_queued_ = false;
    if (state() == State::closing || state() == State::closed || !conn_reads_) return;
    if (!tls_->has_buffered_input()) return;
    on_readable();
    if (state() == State::closing || state() == State::closed) return;
    apply_tls_interest();
    if (conn_reads_ && tls_->has_buffered_input()) queue_tls_read();
  });
}

void TcpConnection::on_tls_io(uint32_t ready) {
  if (handshaking_) {
    drive_handshake();
    return;
  }
  auto done = [this] { return state() == State::closing || state() == State::closed; };
  bool readable = ready & (ready::readable | ready::hangup | ready::error);
  bool writable = ready & ready::writable;
  // Each waiting call is retried on the event it waits for.
  if (writable && conn_reads_ && tls_->read_needs_write()) on_readable();
  if (done()) return;
  if (readable && tls_->write_needs_read()) on_writable();
  if (done()) return;
  if (writable && conn_writes_ && !tls_->write_needs_read()) on_writable();
  if (done()) return;
  if (readable && conn_reads_ && !tls_->read_needs_write()) {
    on_readable();
  } else if (readable && !conn_reads_ && !tls_->write_needs_read()) {
    // Not reading: a hangup or error is still final (as for plain TCP).
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err || (ready & ready::hangup)) on_transport_error(make_error(err ? err : EPIPE));
  }
  if (done()) return;
  apply_tls_interest();
  if (conn_reads_ && tls_->has_buffered_input()) queue_tls_read();
}

void TcpConnection::on_io(uint32_t ready) {
  if (proxy_ && !proxy_->passed()) {
    on_proxy_io(ready);
    return;
  }
  if ((ready & ready::error) && watcher_.error()) {  // the poller refused an interest change
    if (handshaking_) {
      handshaking_ = false;
      if (handshake_timer_) loop().cancel_timer(std::exchange(handshake_timer_, {}));
      fail_unstarted({tls_->is_client() ? CloseReason::connect_failed : CloseReason::error,
                      watcher_.error(), "the socket cannot be watched"},
                     tls_->is_client());
      return;
    }
    on_transport_error(watcher_.error());
    return;
  }
  if (tls_) {
    on_tls_io(ready);
    return;
  }
  if (ready & ready::writable) on_writable();
  if (state() == State::closing || state() == State::closed) return;
  if (ready & (ready::readable | ready::hangup | ready::error)) {
    if (has(watcher_.interest(), Interest::read)) {
      on_readable();
    } else {
      // Not reading (paused, or half-closed): a hangup or error is still final, and left
      // alone it would be reported again on every wait.
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err || (ready & ready::hangup)) on_transport_error(make_error(err ? err : EPIPE));
    }
  }
}

IoResult TcpConnection::read_some(void* into, size_t n) {
  if (tls_) return tls_->read(into, n);
  if (proxy_ && proxy_->has_rest()) return {proxy_->take_rest(into, n), 0};
  for (;;) {
    ssize_t r = ::recv(fd_.get(), into, n, 0);
    if (r >= 0) return {size_t(r), 0};
    if (errno != EINTR) return failed();
  }
}

IoResult TcpConnection::write_some(const void* data, size_t n, bool more) {
  if (tls_) return tls_->write(data, n);
  int flags = kSendFlags;
#ifdef MSG_MORE
  if (more) flags |= MSG_MORE;
#else
  (void)more;
#endif
  for (;;) {
    ssize_t r = ::send(fd_.get(), data, n, flags);
    if (r > 0) return {size_t(r), 0};
    if (r == 0) return {0, EPIPE};
    if (errno != EINTR) return failed();
  }
}

IoResult TcpConnection::write_gather(std::span<const std::string_view> pieces) {
  if (tls_) return tls_->write_gather(pieces);
  // sendmsg rather than writev: writev cannot say MSG_NOSIGNAL.
  iovec iov[64];
  size_t count = std::min(pieces.size(), std::size(iov));
  for (size_t i = 0; i < count; ++i)
    iov[i] = {const_cast<char*>(pieces[i].data()), pieces[i].size()};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = decltype(msg.msg_iovlen)(count);
  for (;;) {
    ssize_t r = ::sendmsg(fd_.get(), &msg, kSendFlags);
    if (r > 0) return {size_t(r), 0};
    if (r == 0) return {0, EPIPE};
    if (errno != EINTR) return failed();
  }
}

IoResult TcpConnection::write_file(int file, uint64_t offset, size_t n) {
  if (tls_) return tls_->write_file(file, offset, n);
  for (;;) {
#ifdef __linux__
    off_t off = off_t(offset);
    ssize_t r = ::sendfile(fd_.get(), file, &off, n);
    if (r >= 0) return {size_t(r), 0};
#else
    // No portable sendfile: through a stack buffer (the loop's scratch may hold the input
    // being parsed while a handler calls send_file).
    char buf[16 * 1024];
    ssize_t r = ::pread(file, buf, std::min(n, sizeof buf), off_t(offset));
    if (r == 0) return {0, 0};
    if (r > 0) return write_some(buf, size_t(r), false);
#endif
    if (errno != EINTR) return failed();
  }
}

void TcpConnection::send_end_of_stream() noexcept {
  if (tls_) tls_->send_close_notify();
  ::shutdown(fd_.get(), SHUT_WR);
}

void TcpConnection::want_events(bool read, bool write) {
  conn_reads_ = read;
  conn_writes_ = write;
  if (tls_) {
    if (handshaking_) return;
    apply_tls_interest();
    if (read && tls_->has_buffered_input()) queue_tls_read();
    return;
  }
  watcher_.set_interest((read ? Interest::read : Interest::none) |
                        (write ? Interest::write : Interest::none));
  if (read && proxy_ && proxy_->has_rest()) queue_rest_read();  // read with the PROXY header
}

void TcpConnection::release_transport(bool reset) noexcept {
  watcher_.stop();
  if (proxy_) proxy_->abandon();  // closed while its header was awaited: counted, timer gone
  // An orderly close that did not pass through our end of stream (the peer ended first,
  // or no linger): the TLS peer still gets our close_notify, which it may wait for (and
  // without which OpenSSL forgets the session).
  // Not after output was dropped: the peer must see that the stream was cut short.
  if (tls_ && tls_ready_ && !reset && !output_dropped()) tls_->send_close_notify();
  handshaking_ = false;
  if (handshake_timer_) loop().cancel_timer(std::exchange(handshake_timer_, {}));
  if (reset) {
    // SO_LINGER with a zero timeout makes close() send a reset and drop unsent data.
    linger lg{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  fd_.reset();
}

std::error_code TcpConnection::error_for(int error) const noexcept {
  if (tls_ && error == EPROTO && tls_->failure()) return tls_->failure();
  return make_error(error);
}

bool TcpConnection::all_acknowledged() const noexcept {
#if defined(__linux__) && defined(SIOCOUTQ)
  int unacked = 0;
  if (::ioctl(fd_.get(), SIOCOUTQ, &unacked) == 0) return unacked == 0;
#endif
  return true;
}

}  // namespace netloop
