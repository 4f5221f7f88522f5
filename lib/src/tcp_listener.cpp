// TcpListener: bind/listen, batched nonblocking accept, EMFILE handling, and ownership
// of the accepted connections.
#include "netloop/tcp_listener.hpp"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netloop/log.hpp"
#include "proxy_stage.hpp"
#include "tls/tls_layer.hpp"

namespace netloop {
namespace {

constexpr auto kAcceptRetryDelay = milliseconds(100);

Fd open_reserve_fd() { return Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

int accept_nonblocking(int lfd, sockaddr_storage* ss, socklen_t* len) {
#ifdef __linux__
  return ::accept4(lfd, reinterpret_cast<sockaddr*>(ss), len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
  int fd = ::accept(lfd, reinterpret_cast<sockaddr*>(ss), len);
  if (fd >= 0 && !set_nonblocking_cloexec(fd)) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
#endif
}

#ifdef TCP_DEFER_ACCEPT
constexpr bool kCanDeferAccepts = true;
#else
constexpr bool kCanDeferAccepts = false;
#endif

// How long accepts wait for the peer's first bytes (zero: they do not).
Duration deferral_of(const ListenerOptions& options) noexcept {
  Duration d = std::max(options.defer_accept, Duration::zero());
  if (options.proxy_protocol && options.proxy_protocol->defer_accept)
    d = std::max(d, options.proxy_protocol->header_timeout);
  return d;
}

// Sets the deferral on a listening socket (where the kernel can). A refusal costs only the
// saving: said, not fatal.
void defer_accepts(int fd, const ListenerOptions& options, const Address& where) {
#ifdef TCP_DEFER_ACCEPT
  // Whole seconds, rounded up: the kernel counts SYN-ACK retransmissions from it.
  auto ms = std::chrono::duration_cast<milliseconds>(deferral_of(options)).count();
  int secs = int(std::min<int64_t>((ms + 999) / 1000, 3600));
  if (::setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof secs) < 0)
    log_warn("listener {}: cannot set TCP_DEFER_ACCEPT: {}", where, std::strerror(errno));
#else
  (void)fd;
  (void)options;
  (void)where;
#endif
}

}  // namespace

Result<std::unique_ptr<TcpListener>> TcpListener::listen(EventLoop& loop, const Address& address,
                                                         StreamHandlerFactory factory,
                                                         const ListenerOptions& options) {
  Fd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return last_error();
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (options.reuse_port)
    if (auto r = set_reuse_port(fd.get()); !r) return r.error();
  if (address.is_ipv6()) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd.get(), address.sockaddr_ptr(), address.length()) < 0) return last_error();
  if (::listen(fd.get(), options.backlog) < 0) return last_error();
  if (deferral_of(options) > Duration::zero()) defer_accepts(fd.get(), options, address);

  Address local = Address::local_of(fd.get(), address);

  std::unique_ptr<TcpListener> l(
      new TcpListener(loop, std::move(fd), local, std::move(factory), options));
  if (auto r = l->watcher_.start(l->fd_.get(), Interest::read); !r) return r.error();
  return l;
}

Result<std::unique_ptr<TcpListener>> TcpListener::from_descriptor(EventLoop& loop, Fd fd,
                                                                  StreamHandlerFactory factory,
                                                                  const ListenerOptions& options) {
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (!fd || ::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
    return make_error(EINVAL);
  len = sizeof listening;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening)
    return make_error(EINVAL);
  if (!set_nonblocking_cloexec(fd.get())) return last_error();
  // On a listening socket listen() only sets the backlog: the queue is kept.
  if (::listen(fd.get(), options.backlog) < 0) return last_error();
  Address local = Address::local_of(fd.get(), Address());
  if (local.family() != AF_INET && local.family() != AF_INET6) return make_error(EINVAL);
  // Set either way: the instance that handed it over may have deferred, or not.
  defer_accepts(fd.get(), options, local);
  std::unique_ptr<TcpListener> l(
      new TcpListener(loop, std::move(fd), local, std::move(factory), options));
  if (auto r = l->watcher_.start(l->fd_.get(), Interest::read); !r) return r.error();
  return l;
}

void TcpListener::apply_socket_options(int fd, const ListenerOptions& options,
                                       const Address& where) {
  // On a listening socket listen() only sets the backlog: the queue is kept.
  if (::listen(fd, options.backlog) < 0)
    log_warn("listener {}: cannot set the backlog: {}", where, std::strerror(errno));
  defer_accepts(fd, options, where);
}

std::unique_ptr<TcpListener> TcpListener::adopter(EventLoop& loop, const Address& local,
                                                  StreamHandlerFactory factory,
                                                  const ListenerOptions& options) {
  ListenerOptions o = options;
  o.hand_off = nullptr;
  return std::unique_ptr<TcpListener>(new TcpListener(loop, Fd(), local, std::move(factory), o));
}

void TcpListener::adopt_accepted(Fd fd, const Address& peer) {
  ++stats_.accepted;
  // Handed over after this loop began draining (the acceptor had it queued): it would
  // never be told to drain, so it is closed now, unserved, like one left in a backlog.
  if (draining_) return;
  adopt(std::move(fd), peer);
}

TcpListener::TcpListener(EventLoop& loop, Fd fd, const Address& local,
                         StreamHandlerFactory factory, const ListenerOptions& options)
    : loop_(loop),
      fd_(std::move(fd)),
      watcher_(loop, [this](uint32_t) { on_readable(); }),
      local_(local),
      factory_(std::move(factory)),
      options_(options),
      reserve_fd_(open_reserve_fd()),
      wildcard_(local.host() == "0.0.0.0" || local.host() == "::"),
      defers_accepts_(kCanDeferAccepts && deferral_of(options) > Duration::zero()) {}

TcpListener::~TcpListener() {
  if (alive_flag_) *alive_flag_ = false;
  stop_accepting();
  // Close every connection now; their handlers hear CloseReason::shutdown. The objects go
  // to the loop for disposal: deferred work of theirs may still be queued.
  auto conns = std::move(connections_);
  for (auto& c : conns) {
    c->shut_down();
    loop_.dispose_later(std::move(c));
  }
}

size_t TcpListener::busy_connection_count() const noexcept {
  size_t n = 0;
  for (const auto& c : connections_) n += c->delivered_all() ? 0 : 1;
  return n;
}

void TcpListener::drain() {
  draining_ = true;
  stop_accepting();
  // Handlers may close (and so leave connections_) as they are told: walk a snapshot.
  // Released connections are disposed of after this iteration, so the pointers hold.
  std::vector<TcpConnection*> snapshot;
  snapshot.reserve(connections_.size());
  for (auto& c : connections_) snapshot.push_back(c.get());
  for (TcpConnection* c : snapshot) c->request_drain();
}

void TcpListener::count_refusal(const Address& peer, Refusal why) {
  if (why == Refusal::per_client) {
    uint64_t n = ++stats_.refused_per_client;
    if (n == 1 || n % 1000 == 0)
      log_warn("listener {}: {} holds {} connections, the per-client limit; refusing more "
               "({} so far)", local_, peer.host(),
               options_.client_limit ? options_.client_limit->per_client() : 0, n);
  } else {
    ++stats_.refused;
    if (stats_.refused == 1 || stats_.refused % 1000 == 0)
      log_warn("listener {}: {} connections open, the limit; refusing new ones ({} so far)",
               local_, options_.limit ? options_.limit->max() : 0, stats_.refused);
  }
}

// Past a connection limit: a refusal handler (with a short linger, so its answer is
// read rather than reset) or, without one, a close at once. False: `fd` is closed.
bool TcpListener::refuse(Fd& fd, const Address& peer, Refusal why) {
  count_refusal(peer, why);
  if (!options_.refusal_factory) return false;
  auto handler = options_.refusal_factory();
  if (!handler) return false;
  ConnectionOptions copt = options_.connection;
  copt.linger_timeout = std::min(copt.linger_timeout, Duration(seconds(1)));
  copt.close_timeout = std::min(copt.close_timeout, Duration(seconds(1)));
  int raw = fd.get();
  auto conn = std::make_unique<TcpConnection>(loop_, std::move(fd), peer, local_,
                                              std::move(handler), copt);
  TcpConnection& ref = *conn;
  ref.attach(this, nullptr);
  ref.mark_refusal();
  ref.set_owner_index(connections_.size());
  connections_.push_back(std::move(conn));
  // Over TLS the refusal (an HTTP 503) is said after the handshake, or the client cannot
  // read it.
  if (options_.tls) ref.cap_handshake_timeout(copt.close_timeout);  // 1 s at most, as the rest
  expect_proxy_header(ref, copt.close_timeout);  // 1 s at most for its header too
  if (!secure(ref, raw) || !ref.start().ok()) release(ref);  // never reached its handler
  return true;
}

bool TcpListener::secure(TcpConnection& conn, int fd) {
  if (!options_.tls) return true;
  auto layer = make_server_layer(*options_.tls, fd);
  if (!layer) {
    log_warn("listener {}: cannot start a TLS session (out of memory?)", local_);
    return false;
  }
  conn.use_tls(std::move(layer));
  return true;
}

void TcpListener::expect_proxy_header(TcpConnection& conn, Duration cap) {
  if (!options_.proxy_protocol) return;
  auto stage = std::make_unique<ProxyStage>(loop_, options_.proxy_protocol, &stats_.proxy_protocol);
  stage->cap_timeout(cap);
  if (defers_accepts_) stage->expect_header_with_accept();
  conn.use_proxy_protocol(std::move(stage));
}

void TcpListener::stop_accepting() noexcept {
  watcher_.stop();
  fd_.reset();
  if (retry_timer_) loop_.cancel_timer(retry_timer_);
  retry_timer_ = {};
}

void TcpListener::on_readable() {
  // A handler's on_open (or the factory) may destroy this listener: notice, and stop.
  bool alive = true;
  alive_flag_ = &alive;
  struct Unflag {
    TcpListener* self;
    const bool& alive;
    ~Unflag() {
      if (alive) self->alive_flag_ = nullptr;
    }
  } unflag{this, alive};
  const size_t batch = std::max<size_t>(options_.accept_batch, 1);
  for (size_t i = 0; i < batch && fd_; ++i) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int cfd = accept_nonblocking(fd_.get(), &ss, &len);
    if (cfd >= 0) {
      Address peer = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
      if (options_.hand_off) {
        options_.hand_off(Fd(cfd), peer);
        continue;
      }
      ++stats_.accepted;
      adopt(Fd(cfd), peer);
      if (!alive) return;
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
    if (err == EMFILE || err == ENFILE) {
      // Out of descriptors: the pending connection would make the listener readable
      // forever. Spend the reserve descriptor to accept it and close it at once.
      if (shed_one_connection()) continue;
    }
    // No reserve descriptor, or another failure (ENOBUFS, ENOMEM...): the connection
    // stays queued and the listener stays readable, so stop listening for a moment
    // instead of spinning.
    ++stats_.accept_errors;
    if (stats_.accept_errors == 1 || stats_.accept_errors % 100 == 0)
      log_warn("listener {}: accept failed: {} ({} so far); pausing accept for {} ms",
               local_, std::strerror(err), stats_.accept_errors,
               kAcceptRetryDelay.count());
    pause_accepting();
    return;
  }
}

void TcpListener::pause_accepting() {
  if (retry_timer_) return;
  watcher_.set_interest(Interest::none);
  retry_timer_ = loop_.run_after(kAcceptRetryDelay, [this] {
    retry_timer_ = {};
    if (fd_) watcher_.set_interest(Interest::read);
  });
}

bool TcpListener::shed_one_connection() {
  if (!reserve_fd_) {
    reserve_fd_ = open_reserve_fd();
    if (!reserve_fd_) return false;
  }
  reserve_fd_.reset();
  int cfd = ::accept(fd_.get(), nullptr, nullptr);
  if (cfd >= 0) {
    ::close(cfd);
    ++stats_.dropped_no_fds;
    if (stats_.dropped_no_fds == 1 || stats_.dropped_no_fds % 1000 == 0)
      log_warn("listener {}: out of file descriptors; {} connection(s) refused so far "
               "(raise the limit with ulimit -n)",
               local_, stats_.dropped_no_fds);
  }
  reserve_fd_ = open_reserve_fd();
  return cfd >= 0 && reserve_fd_;
}

void TcpListener::adopt(Fd fd, const Address& peer) {
  // Bound to one address, the local address is the listener's; only a wildcard listener
  // needs to ask the kernel which of its addresses the peer reached.
  Address local = wildcard_ ? Address::local_of(fd.get(), local_) : local_;
  // Only a trusted peer's bytes may be read as a PROXY header; nobody else's are read.
  if (options_.proxy_protocol &&
      !proxy_peer_trusted(*options_.proxy_protocol, stats_.proxy_protocol, peer, local))
    return;
  if (options_.limit && !options_.limit->try_acquire()) {
    refuse(fd, peer, Refusal::max_connections);
    return;
  }
  ClientSlot client;  // given back by its destructor on every early return below
  // Behind a PROXY header the client is not the peer: counted once the header names it
  // (admit(), below).
  if (!options_.proxy_protocol && !admit_client(peer, client)) {
    if (options_.limit) options_.limit->release();  // a refusal holds no slot
    refuse(fd, peer, Refusal::per_client);
    return;
  }
  auto handler = factory_();
  if (!handler) {  // the factory refused it: closing fd drops the connection
    ++stats_.factory_refused;
    if (options_.limit) options_.limit->release();
    return;
  }
  int raw = fd.get();
  auto conn = std::make_unique<TcpConnection>(loop_, std::move(fd), peer, local,
                                              std::move(handler), options_.connection);
  TcpConnection& ref = *conn;
  ref.attach(this, options_.limit.get());  // gives the slot back when it closes
  ref.hold_client_slot(std::move(client));  // and the client's count
  ref.set_owner_index(connections_.size());
  connections_.push_back(std::move(conn));
  expect_proxy_header(ref);
  if (!secure(ref, raw)) {
    release(ref);
    return;
  }
  if (auto ec = ref.start().error()) {
    // E.g. the select backend past FD_SETSIZE: the message names the backend to use.
    ++stats_.unwatchable;
    if (stats_.unwatchable == 1 || stats_.unwatchable % 1000 == 0)
      log_warn("listener {}: cannot watch connection from {}: {} ({} refused so far)",
               local_, peer, ec.message(), stats_.unwatchable);
    auto self = release(ref);
    return;  // destroyed here: it never reached its handler
  }
}

// After a PROXY header: the per-client limit, counted by the client it names. Past it the
// connection becomes a refusal (the refusal handler's answer, an HTTP 503), or closes.
bool TcpListener::admit(StreamConnection& conn) noexcept {
  if (!options_.client_limit || conn.is_refusal()) return true;
  ClientSlot client;
  if (admit_client(conn.peer_address(), client)) {
    conn.hold_client_slot(std::move(client));
    return true;
  }
  count_refusal(conn.peer_address(), Refusal::per_client);
  std::unique_ptr<StreamHandler> handler = options_.refusal_factory ? options_.refusal_factory() : nullptr;
  if (!handler) return false;
  constexpr Duration kRefusalCap = seconds(1);  // as refuse() gives its connections
  conn.become_refusal(std::move(handler), kRefusalCap);
  if (options_.tls) static_cast<TcpConnection&>(conn).cap_handshake_timeout(kRefusalCap);
  return true;
}

bool TcpListener::admit_client(const Address& peer, ClientSlot& slot) noexcept {
  slot.release();
  if (!options_.client_limit) return true;
  slot = ClientSlot::acquire(*options_.client_limit, peer);
  return bool(slot);
}

std::unique_ptr<Disposable> TcpListener::release(StreamConnection& conn) noexcept {
  size_t slot = conn.owner_index();
  if (slot >= connections_.size() || connections_[slot].get() != &conn) return nullptr;
  std::unique_ptr<TcpConnection> out = std::move(connections_[slot]);
  if (slot + 1 != connections_.size()) {
    connections_[slot] = std::move(connections_.back());
    connections_[slot]->set_owner_index(slot);
  }
  connections_.pop_back();
  return out;
}

}  // namespace netloop
