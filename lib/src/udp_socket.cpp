// UdpSocket: bound and connected sockets, batched receive and send, truncation and
// ICMP-error handling, and the handler's open, drain, peer errors and close.
#include "netloop/udp_socket.hpp"

#include <algorithm>
#include <cstring>
#include <utility>
#include <netinet/in.h>
#include <sys/socket.h>

#include "completion.hpp"
#include "datagram_errors.hpp"
#include "netloop/log.hpp"

namespace netloop {
namespace {

#if defined(__linux__)
#define NETLOOP_HAVE_MMSG 1
#endif

}  // namespace

struct UdpSocket::Batch {
  explicit Batch(size_t n, size_t room)
      : room(room), area(new char[n * room]), iov(n), from(n)
#ifdef NETLOOP_HAVE_MMSG
        , rx(n), tx(n), tx_iov(n)
#endif
  {
    for (size_t i = 0; i < n; ++i) {
      iov[i] = {area.get() + i * room, room};
#ifdef NETLOOP_HAVE_MMSG
      msghdr& h = rx[i].msg_hdr;  // set once; each call only resets msg_namelen
      h.msg_name = &from[i];
      h.msg_iov = &iov[i];
      h.msg_iovlen = 1;
#endif
    }
  }
  size_t room;
  std::unique_ptr<char[]> area;
  std::vector<iovec> iov;
  std::vector<sockaddr_storage> from;
#ifdef NETLOOP_HAVE_MMSG
  std::vector<mmsghdr> rx;
  std::vector<mmsghdr> tx;
  std::vector<iovec> tx_iov;
#endif
};

// By completion: the channel, and the socket's side of it (the sink of its reports).
struct UdpSocket::Channel final : DatagramChannelSink {
  Channel(UdpSocket& socket, std::unique_ptr<DatagramChannel> channel)
      : socket(socket), channel(std::move(channel)) {}

  size_t process(size_t max_datagrams) { return channel->process(*this, max_datagrams); }
  void settle() { channel->settle(*this); }

  void on_channel_datagram(std::span<const std::byte> data, const sockaddr* from,
                           unsigned from_length) override {
    ++socket.stats_.datagrams_in;
    socket.stats_.bytes_in += data.size();
    socket.handler_->on_datagram(socket, data,
                                 Address::from_sockaddr(from, socklen_t(from_length)));
  }
  void on_channel_truncated() override { ++socket.stats_.dropped_truncated; }
  void on_channel_sent(size_t bytes) override {
    ++socket.stats_.datagrams_out;
    socket.stats_.bytes_out += bytes;
  }
  void on_channel_send_failed(int err) override { socket.count_send_error(err, 1); }
  bool on_channel_receive_error(int err) override {
    if (is_datagram_peer_error(err)) {
      socket.note_peer_error(err, 0);
      return true;
    }
    error = err ? err : EIO;
    return false;
  }

  UdpSocket& socket;
  std::unique_ptr<DatagramChannel> channel;
  int error = 0;              // it stopped receiving: back to readiness after process()
  bool queued_sends = false;  // a send went to the channel during this process()
};

namespace {

// The options a socket can be served with, whether bound here or inherited.
bool valid_options(const UdpOptions& options) noexcept {
  // recvmmsg/sendmmsg take at most UIO_MAXIOV (1024) messages per call.
  if (options.batch == 0 || options.batch > 1024 || options.max_datagram == 0 ||
      options.max_datagram > 65535)
    return false;
  const size_t nbuf = options.completion_buffers;
  return !options.completion || (nbuf >= 2 && nbuf <= 32768 && (nbuf & (nbuf - 1)) == 0);
}

}  // namespace

Result<Fd> UdpSocket::open_socket(int family, const UdpOptions& options) {
  if (!valid_options(options)) return make_error(EINVAL);
  Fd fd(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return last_error();
  if (options.recv_buffer > 0)
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &options.recv_buffer, sizeof options.recv_buffer);
  if (options.send_buffer > 0)
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &options.send_buffer, sizeof options.send_buffer);
  return fd;
}

Result<std::unique_ptr<UdpSocket>> UdpSocket::bind(EventLoop& loop, const Address& address,
                                                   std::unique_ptr<DatagramHandler> handler,
                                                   const UdpOptions& options) {
  auto fd = open_socket(address.family(), options);
  if (!fd) return fd.error();
  int one = 1;
  if (address.is_ipv6()) ::setsockopt(fd->get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (options.reuse_port)
    if (auto r = set_reuse_port(fd->get()); !r) return r.error();
  if (::bind(fd->get(), address.sockaddr_ptr(), address.length()) < 0) return last_error();
  Address local = Address::local_of(fd->get(), address);
  return start(loop, std::move(*fd), local, Address(), std::move(handler), options);
}

Result<std::unique_ptr<UdpSocket>> UdpSocket::from_descriptor(
    EventLoop& loop, Fd fd, std::unique_ptr<DatagramHandler> handler, const UdpOptions& options) {
  int type = 0;
  socklen_t len = sizeof type;
  if (!fd || ::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_DGRAM)
    return make_error(EINVAL);
  if (!valid_options(options)) return make_error(EINVAL);  // as bind() checks them
  Address local = Address::local_of(fd.get(), Address());
  if ((local.family() != AF_INET && local.family() != AF_INET6) || local.port() == 0)
    return make_error(EINVAL);  // not an IP socket, or never bound
  sockaddr_storage ss{};
  len = sizeof ss;
  if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
    return make_error(EINVAL);  // connected: a client's socket, not a server's
  if (!set_nonblocking_cloexec(fd.get())) return last_error();
  return start(loop, std::move(fd), local, Address(), std::move(handler), options);
}

Result<std::unique_ptr<UdpSocket>> UdpSocket::connect(EventLoop& loop, const Address& remote,
                                                      std::unique_ptr<DatagramHandler> handler,
                                                      const UdpOptions& options,
                                                      const std::optional<Address>& local) {
  const int family = remote.family();
  if ((family != AF_INET && family != AF_INET6) || (local && local->family() != family))
    return make_error(EAFNOSUPPORT);
  auto fd = open_socket(family, options);
  if (!fd) return fd.error();
  if (local) {
    int one = 1;
    if (local->is_ipv6()) ::setsockopt(fd->get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (options.reuse_port)
      if (auto r = set_reuse_port(fd->get()); !r) return r.error();
    if (::bind(fd->get(), local->sockaddr_ptr(), local->length()) < 0) return last_error();
  }
  // A UDP connect only sets the peer (and, unbound, picks the local address): it sends
  // nothing and never waits, even on a nonblocking socket.
  int r;
  do {
    r = ::connect(fd->get(), remote.sockaddr_ptr(), remote.length());
  } while (r < 0 && errno == EINTR);
  if (r < 0) return last_error();
  if (local) {
    // Bound before the connect, the socket could receive from anyone meanwhile, and the
    // connect does not empty its queue: what is there now is not from the peer alone.
    // Only the peer can add more from here, so this ends.
    char byte;
    for (int i = 0; i < 65536; ++i)
      if (::recv(fd->get(), &byte, 1, MSG_DONTWAIT) < 0 && errno != EINTR &&
          !is_datagram_peer_error(errno))
        break;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  Address peer = ::getpeername(fd->get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0
                     ? Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len)
                     : remote;
  Address bound = Address::local_of(fd->get(), local ? *local : Address());
  return start(loop, std::move(*fd), bound, peer, std::move(handler), options);
}

Result<std::unique_ptr<UdpSocket>> UdpSocket::start(EventLoop& loop, Fd fd, const Address& local,
                                                    const Address& peer,
                                                    std::unique_ptr<DatagramHandler> handler,
                                                    const UdpOptions& options) {
  std::unique_ptr<UdpSocket> s(
      new UdpSocket(loop, std::move(fd), local, peer, std::move(handler), options));
  if (options.completion) {
    DatagramChannelOptions co;
    co.max_datagram = options.max_datagram;
    co.buffers = options.completion_buffers;
    auto channel = s->watcher_.open_datagram_channel(s->fd_.get(), co);
    if (channel) {
      s->channel_ = std::make_unique<Channel>(*s, std::move(*channel));
    } else if (channel.error() != std::errc::not_supported) {
      log_warn("udp {}: {} cannot serve it by completion ({}); serving it by readiness",
               local.to_string(), loop.backend_name(), channel.error().message());
    }
  }
  if (!s->channel_)
    if (auto r = s->serve_by_readiness(); !r) return r.error();  // never opened: no on_close either
  s->open_ = true;
  s->handler_->on_open(*s);
  return s;
}

Result<void> UdpSocket::serve_by_readiness() {
  // One spare byte per slot: a datagram that fills the slot exactly is whole, one that
  // would overflow it is reported truncated by the kernel (MSG_TRUNC).
  if (!batch_) batch_ = std::make_unique<Batch>(options_.batch, options_.max_datagram + 1);
  return watcher_.start(fd_.get(), output_full_ ? Interest::read_write : Interest::read);
}

UdpSocket::UdpSocket(EventLoop& loop, Fd fd, const Address& local, const Address& peer,
                     std::unique_ptr<DatagramHandler> handler, const UdpOptions& options)
    : loop_(loop),
      fd_(std::move(fd)),
      watcher_(loop, [this](uint32_t ready) { on_ready(ready); }),
      room_watcher_(loop, [this](uint32_t) { on_room(); }),
      local_(local),
      peer_(peer),
      handler_(std::move(handler)),
      options_(options),
      timers_(loop) {}

UdpSocket::~UdpSocket() {
  stop_serving({CloseReason::shutdown, {}});
}

void UdpSocket::stop_serving(const CloseInfo& info) {
  const bool was_open = std::exchange(open_, false);  // first: send_to refuses from here
  output_full_ = false;                               // and no on_drain comes any more
  if (channel_) drop_channel();
  watcher_.stop();
  room_watcher_.stop();
  timers_.cancel_all();
  if (was_open) handler_->on_close(*this, info);
}

void UdpSocket::drop_channel() {
  channel_->settle();       // its last replies go out (and are counted)
  channel_.reset();         // before the watcher stops: it reports to the watcher's token
  watcher_.stop();
  room_watcher_.stop();     // readiness, if it comes to that, waits with watcher_ itself
}

void UdpSocket::on_ready(uint32_t ready) {
  if (channel_) {
    on_channel_work();
    return;
  }
  if (auto ec = watcher_.error()) {  // the poller refused an interest change: unregistered
    log_error("udp {}: the poller dropped it ({}); it stops serving", local_.to_string(),
              ec.message());
    stop_serving({CloseReason::error, ec});
    return;
  }
  if (ready & ready::writable) on_room();
  if (ready & ~ready::writable) on_readable();
}

void UdpSocket::settle() {
  if (channel_) channel_->settle();
}

void UdpSocket::on_channel_work() {
  // One batch per report, as one recvmmsg would take; the poller reports the rest at its
  // next wait, which also hands this batch's replies to the kernel.
  in_batch_ = true;
  channel_->queued_sends = false;
  size_t got = channel_->process(options_.batch);
  in_batch_ = false;
  if (got > 0) ++stats_.receive_calls;
  if (channel_->queued_sends) ++stats_.send_calls;
  if (const int err = channel_->error) {
    log_warn("udp {}: {} stopped receiving by completion ({}); serving it by readiness",
             local_.to_string(), loop_.backend_name(), std::strerror(err));
    drop_channel();
    if (auto ec = serve_by_readiness().error()) {
      log_error("udp {}: cannot serve it by readiness either: {}", local_.to_string(), ec.message());
      stop_serving({CloseReason::error, ec});
    }
  }
}

void UdpSocket::wait_for_room() {
  if (output_full_ || !open_) return;
  output_full_ = true;
  if (!channel_) {
    watcher_.set_interest(Interest::read_write);
    return;
  }
  // By completion the poller knows nothing of this socket: a watcher of its own asks for
  // write space (io_uring's readiness side, on the same ring).
  if (auto ec = room_watcher_.start(fd_.get(), Interest::write).error()) {
    log_warn("udp {}: cannot wait for send buffer space ({}); no on_drain will follow",
             local_.to_string(), ec.message());
    output_full_ = false;
  }
}

void UdpSocket::on_room() {
  if (!output_full_) return;
  output_full_ = false;
  if (channel_)
    room_watcher_.stop();
  else
    watcher_.set_interest(Interest::read);
  handler_->on_drain(*this);
}

void UdpSocket::on_readable() {
  // At least one receive per wake-up: reading nothing would leave the (level-triggered)
  // socket readable and spin the loop.
  const size_t rounds = std::max<size_t>(options_.batches_per_wakeup, 1);
  for (size_t i = 0; i < rounds; ++i) {
    // Under light load (batches keep coming back with one datagram) asking for a whole
    // batch only adds the kernel's failing attempt at a second datagram: receive one per
    // wake-up then, like a plain recvfrom loop, and probe with a full batch now and then
    // to notice when load comes back.
    const bool probe = single_mode_ && ++wakeups_since_probe_ >= kProbeEvery;
    const size_t want = single_mode_ && !probe ? 1 : options_.batch;
    in_batch_ = true;
    single_receive_ = want == 1;
    size_t got = receive_batch(want);
    in_batch_ = single_receive_ = false;
    if (!pending_.empty()) flush();
    if (want > 1) {
      if (probe) wakeups_since_probe_ = 0;
      if (got > 1) {
        single_mode_ = false;
        light_batches_ = 0;
      } else if (!single_mode_ && ++light_batches_ >= kLightBatchesForSingle) {
        single_mode_ = true;
      }
    }
    if (got < want || single_mode_) break;  // drained, or light load: the poller brings more
  }
}

size_t UdpSocket::receive_batch(size_t n) {
  Batch& b = *batch_;
  size_t count = 0;
#ifdef NETLOOP_HAVE_MMSG
  for (size_t i = 0; i < n; ++i) b.rx[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
  int r;
  do {
    if (n == 1) {
      // One datagram: recvfrom skips recvmmsg's and recvmsg's header copying. With
      // MSG_TRUNC it returns the datagram's real length, so truncation still shows.
      msghdr& h = b.rx[0].msg_hdr;
      ssize_t len = ::recvfrom(fd_.get(), b.iov[0].iov_base, b.iov[0].iov_len,
                               MSG_DONTWAIT | MSG_TRUNC, static_cast<sockaddr*>(h.msg_name),
                               &h.msg_namelen);
      r = len < 0 ? -1 : 1;
      if (len >= 0) {
        h.msg_flags = size_t(len) > b.iov[0].iov_len ? MSG_TRUNC : 0;
        b.rx[0].msg_len = unsigned(std::min(size_t(len), b.iov[0].iov_len));
      }
    } else {
      r = ::recvmmsg(fd_.get(), b.rx.data(), unsigned(n), MSG_DONTWAIT, nullptr);
    }
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    if (is_datagram_peer_error(err)) {
      note_peer_error(err, 0);
      return n;  // an ICMP error from an earlier send: there may be more to read
    }
    if (err != EAGAIN && err != EWOULDBLOCK)
      log_warn("udp {}: receive failed: {}", local_.to_string(), std::strerror(err));
    return 0;
  }
  ++stats_.receive_calls;
  count = size_t(r);
  for (size_t i = 0; i < count; ++i) {
    const msghdr& h = b.rx[i].msg_hdr;
    size_t len = b.rx[i].msg_len;
    if ((h.msg_flags & MSG_TRUNC) || len > options_.max_datagram) {
      ++stats_.dropped_truncated;
      continue;
    }
    ++stats_.datagrams_in;
    stats_.bytes_in += len;
    Address from = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&b.from[i]), h.msg_namelen);
    handler_->on_datagram(*this, {reinterpret_cast<const std::byte*>(b.iov[i].iov_base), len}, from);
  }
#else
  for (; count < n; ++count) {
    socklen_t alen = sizeof(sockaddr_storage);
    msghdr h{};
    h.msg_name = &b.from[0];
    h.msg_namelen = alen;
    h.msg_iov = &b.iov[0];
    h.msg_iovlen = 1;
    ssize_t len = ::recvmsg(fd_.get(), &h, 0);
    if (len < 0) {
      if (errno == EINTR) { --count; continue; }
      if (is_datagram_peer_error(errno)) { note_peer_error(errno, 0); continue; }
      break;
    }
    ++stats_.receive_calls;
    if (h.msg_flags & MSG_TRUNC) { ++stats_.dropped_truncated; continue; }
    ++stats_.datagrams_in;
    stats_.bytes_in += size_t(len);
    Address from = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&b.from[0]), h.msg_namelen);
    handler_->on_datagram(*this, {reinterpret_cast<const std::byte*>(b.iov[0].iov_base), size_t(len)}, from);
  }
#endif
  return count;
}

bool UdpSocket::send(const void* data, size_t n) {
  loop_.assert_in_loop_thread();
  if (!connected()) return false;  // no peer to send to: a server socket answers with send_to
  return send_to(peer_, data, n);
}

bool UdpSocket::send_to(const Address& to, const void* data, size_t n) {
  loop_.assert_in_loop_thread();
  // A connected socket's sends go to its peer without an address (send_name): another
  // `to` would go there unnamed. (Linux would send to it, BSD refuses with EISCONN, and
  // its answer would be dropped as not from the peer.)
  if (connected() && !(to == peer_)) return false;
  // The largest UDP payload: 65,535 minus the UDP header and the IPv4 header (IPv6's
  // header is not counted in its payload length).
  const size_t max = to.is_ipv6() ? 65527 : 65507;
  if (n > max) {
    ++stats_.dropped_too_large;
    return false;
  }
  if (!open_) return false;  // stopped serving (or not yet started): nothing goes out
  if (channel_) {
    if (!channel_->channel->send(send_name(to), unsigned(send_name_length(to)), data, n)) {
      ++stats_.dropped_send_full;  // more in flight than the channel has room for
      wait_for_room();
      return true;  // as if the kernel had refused it later: counted, not refused
    }
    if (in_batch_)
      channel_->queued_sends = true;
    else
      ++stats_.send_calls;
    return true;
  }
  // Outside a receive batch (a timer, say) nothing is queued: every batch ends with a
  // flush. So a send from there, or in a batch of one datagram, has nothing to go out
  // with: straight to the kernel, as a plain recvfrom/sendto loop would, no queued copy.
  if (!in_batch_ || (single_receive_ && pending_.empty())) {
    send_now(to, data, n);
    return true;
  }
  if (pending_.size() >= options_.batch) flush();
  pending_.push_back({to, tx_.size(), n});
  tx_.append(data, n);
  return true;
}

void UdpSocket::send_now(const Address& to, const void* data, size_t n) {
  ssize_t r;
  do {
    r = ::sendto(fd_.get(), data, n, MSG_DONTWAIT | MSG_NOSIGNAL, send_name(to),
                 send_name_length(to));
  } while (r < 0 && errno == EINTR);
  ++stats_.send_calls;
  if (r < 0) {
    count_send_error(errno, 1);
    return;
  }
  ++stats_.datagrams_out;
  stats_.bytes_out += n;
}

void UdpSocket::count_send_error(int err, size_t dropped) {
  if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
    stats_.dropped_send_full += dropped;
    wait_for_room();
  } else if (err == EMSGSIZE) stats_.dropped_too_large += dropped;
  else if (is_datagram_peer_error(err)) note_peer_error(err, dropped);
  else {
    stats_.dropped_send_error += dropped;
    if (stats_.dropped_send_error == dropped || stats_.dropped_send_error % 1000 == 0)
      log_warn("udp {}: send failed: {} ({} dropped so far)", local_.to_string(),
               std::strerror(err), stats_.dropped_send_error);
  }
}

void UdpSocket::note_peer_error(int err, size_t dropped) {
  stats_.peer_errors += std::max<size_t>(dropped, 1);
  if (!connected() || !open_) return;  // a server socket cannot tell whose it is
  // From a timer: this may be inside a send (from the handler itself) or a batch.
  if (std::exchange(peer_error_, err) == 0)
    timers_.start(Duration::zero(), Duration::zero(), [this] { report_peer_error(); });
}

void UdpSocket::report_peer_error() {
  const int err = std::exchange(peer_error_, 0);
  if (err && open_) handler_->on_peer_error(*this, make_error(err));
}

void UdpSocket::flush() {
  size_t done = 0;
  const size_t total = pending_.size();
#ifdef NETLOOP_HAVE_MMSG
  Batch& b = *batch_;
  while (done < total) {
    size_t k = std::min(total - done, b.tx.size());
    for (size_t i = 0; i < k; ++i) {
      const Pending& p = pending_[done + i];
      b.tx_iov[i] = {const_cast<char*>(tx_.data()) + p.offset, p.length};
      msghdr& h = b.tx[i].msg_hdr;
      h = {};
      h.msg_name = const_cast<sockaddr*>(send_name(p.to));
      h.msg_namelen = send_name_length(p.to);
      h.msg_iov = &b.tx_iov[i];
      h.msg_iovlen = 1;
    }
    int r;
    do {
      if (k == 1)  // one reply: sendto skips sendmmsg's and sendmsg's header copying
        r = ::sendto(fd_.get(), b.tx_iov[0].iov_base, b.tx_iov[0].iov_len,
                     MSG_DONTWAIT | MSG_NOSIGNAL, send_name(pending_[done].to),
                     send_name_length(pending_[done].to)) < 0 ? -1 : 1;
      else
        r = ::sendmmsg(fd_.get(), b.tx.data(), unsigned(k), MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    ++stats_.send_calls;
    if (r < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
        count_send_error(err, total - done);  // the buffer is full: drop the rest
        break;
      }
      count_send_error(err, 1);  // this one message failed; go on with the next
      ++done;
      continue;
    }
    for (int i = 0; i < r; ++i) {
      ++stats_.datagrams_out;
      stats_.bytes_out += pending_[done + size_t(i)].length;
    }
    done += size_t(r);
  }
#else
  for (; done < total; ++done) {
    const Pending& p = pending_[done];
    ssize_t r;
    do {
      r = ::sendto(fd_.get(), tx_.data() + p.offset, p.length, 0, send_name(p.to),
                   send_name_length(p.to));
    } while (r < 0 && errno == EINTR);
    ++stats_.send_calls;
    if (r < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
        count_send_error(err, total - done);
        break;
      }
      count_send_error(err, 1);
      continue;
    }
    ++stats_.datagrams_out;
    stats_.bytes_out += p.length;
  }
#endif
  pending_.clear();
  tx_.clear();
}

TimerId UdpSocket::start_timer(Duration delay, Duration repeat, std::function<void()> fn) {
  loop_.assert_in_loop_thread();
  return timers_.start(delay, repeat, std::move(fn));
}

bool UdpSocket::cancel_timer(TimerId id) { return timers_.cancel(id); }

}  // namespace netloop
