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

#include "netloop/result.hpp"

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

TcpConnection::~TcpConnection() { watcher_.stop(); }

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
  begin();
  return {};
}

void TcpConnection::on_io(uint32_t ready) {
  if ((ready & ready::error) && watcher_.error()) {  // the poller refused an interest change
    on_transport_error(watcher_.error());
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
  for (;;) {
    ssize_t r = ::recv(fd_.get(), into, n, 0);
    if (r >= 0) return {size_t(r), 0};
    if (errno != EINTR) return failed();
  }
}

IoResult TcpConnection::write_some(const void* data, size_t n, bool more) {
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

void TcpConnection::send_end_of_stream() noexcept { ::shutdown(fd_.get(), SHUT_WR); }

void TcpConnection::want_events(bool read, bool write) {
  watcher_.set_interest((read ? Interest::read : Interest::none) |
                        (write ? Interest::write : Interest::none));
}

void TcpConnection::release_transport(bool reset) noexcept {
  watcher_.stop();
  if (reset) {
    // SO_LINGER with a zero timeout makes close() send a reset and drop unsent data.
    linger lg{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  fd_.reset();
}

bool TcpConnection::all_acknowledged() const noexcept {
#if defined(__linux__) && defined(SIOCOUTQ)
  int unacked = 0;
  if (::ioctl(fd_.get(), SIOCOUTQ, &unacked) == 0) return unacked == 0;
#endif
  return true;
}

}  // namespace netloop
