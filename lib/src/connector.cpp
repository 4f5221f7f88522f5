// Connector: resolve, then nonblocking connects raced the Happy Eyeballs way, and the
// winner handed to a TcpConnection that this connector owns until it closes.
#include "netloop/connector.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "netloop/io_watcher.hpp"
#include "netloop/log.hpp"
#include "netloop/tcp_connection.hpp"
#include "tls/tls_layer.hpp"
#include "unconnected_connection.hpp"

namespace netloop {
namespace {

// Addresses alternating between families, starting with the resolver's first choice
// (RFC 8305 §4): a broken IPv6 path costs one attempt delay, not one per IPv6 address.
Addresses interleave(const Addresses& in) {
  if (in.empty()) return in;
  int first = in.front().family();
  Addresses a, b, out;
  for (auto& x : in) (x.family() == first ? a : b).push_back(x);
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i < a.size()) out.push_back(a[i]);
    if (i < b.size()) out.push_back(b[i]);
  }
  return out;
}

// A nonblocking, close-on-exec stream socket, bound to `local` if given, connecting to
// `to`. 0: connected already; EINPROGRESS: wait for writable; another errno: failed.
int open_and_connect(const Address& to, const std::optional<Address>& local, Fd& out) {
  int type = SOCK_STREAM;
#ifdef SOCK_NONBLOCK
  type |= SOCK_NONBLOCK | SOCK_CLOEXEC;
#endif
  Fd fd(::socket(to.family(), type, IPPROTO_TCP));
  if (!fd) return errno;
#ifndef SOCK_NONBLOCK
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
#endif
  if (local) {
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), local->sockaddr_ptr(), local->length()) != 0) return errno;
  }
  int rc;
  do {
    rc = ::connect(fd.get(), to.sockaddr_ptr(), to.length());
  } while (rc != 0 && errno == EINTR);
  out = std::move(fd);
  return rc == 0 ? 0 : errno;
}

}  // namespace

// --- Backoff ---------------------------------------------------------------------------

Backoff::Backoff(const ReconnectOptions& options, uint64_t seed) : options_(options), rng_(seed) {}

Duration Backoff::next() {
  double base = double(options_.initial.count()) *
                std::pow(std::max(1.0, options_.multiplier), double(failures_));
  base = std::min(base, double(options_.max.count()));
  base = std::min(base, 9.0e18);  // a Duration::max() "no cap" must not overflow the cast
  // (written so that a NaN jitter counts as none)
  double jitter = options_.jitter > 1.0 ? 1.0 : options_.jitter > 0.0 ? options_.jitter : 0.0;
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  if (failures_ < 64) ++failures_;
  return Duration(int64_t(base * (1.0 - jitter * u)));
}

// --- The pieces of a connect in progress -----------------------------------------------

// One socket connecting to one address.
struct Connector::Attempt final : Disposable {
  template <class F>
  Attempt(EventLoop& loop, Address to, F on_ready)
      : address(to), watcher(loop, [this, f = std::move(on_ready)](uint32_t) { f(*this); }) {}
  Address address;
  Fd fd;
  IoWatcher watcher;
};

struct Connector::Pending final : Disposable {
  ConnectId id = 0;
  std::string host;
  uint16_t port = 0;
  std::unique_ptr<StreamHandler> handler;
  ConnectOptions options;
  ConnectId keeper = 0;  // the keep_connected() this attempt is for, if any
  ResolveId resolving = 0;
  Addresses addresses;
  size_t next = 0;  // the next address to try
  std::vector<std::unique_ptr<Attempt>> attempts;  // in flight
  TimerId deadline;
  TimerId delay;  // the next Happy Eyeballs attempt
  std::error_code last_error;
  Address last_address;
};

// keep_connected(): one connection kept up.
struct Connector::Keeper {
  Keeper(ConnectId id, std::string host, uint16_t port, StreamHandlerFactory factory,
         Backoff backoff, const ConnectOptions& options)
      : id(id), host(std::move(host)), port(port), factory(std::move(factory)),
        backoff(std::move(backoff)), options(options) {}
  ConnectId id = 0;
  std::string host;
  uint16_t port = 0;
  StreamHandlerFactory factory;
  Backoff backoff;
  ConnectOptions options;
  ConnectId pending = 0;               // the connect in progress, if any
  StreamConnection* connection = nullptr;  // the connection up, if any
  TimePoint connected_at{};
  TimerId retry;
};

Connector::Connector(EventLoop& loop, ConnectorOptions options)
    : loop_(loop),
      resolver_(loop, std::move(options.resolver)),
      seed_(options.seed ? options.seed : std::random_device{}()),
      alive_(std::make_shared<bool>(true)) {}

Connector::~Connector() {
  *alive_ = false;
  for (auto& k : keepers_)
    if (k->retry) loop_.cancel_timer(k->retry);
  keepers_.clear();
  auto pending = std::move(pending_);
  for (auto& p : pending) {
    if (p->resolving) resolver_.cancel(p->resolving);
    if (p->deadline) loop_.cancel_timer(p->deadline);
    if (p->delay) loop_.cancel_timer(p->delay);
    for (auto& a : p->attempts) a->watcher.stop();
    loop_.dispose_later(std::move(p));
  }
  auto conns = std::move(connections_);
  for (auto& c : conns) {
    c->shut_down();
    loop_.dispose_later(std::move(c));
  }
}

ConnectId Connector::connect(std::string_view host, uint16_t port,
                             std::unique_ptr<StreamHandler> handler, const ConnectOptions& options) {
  return start(next_id_++, host, port, nullptr, std::move(handler), options, 0);
}

ConnectId Connector::connect(const Address& address, std::unique_ptr<StreamHandler> handler,
                             const ConnectOptions& options) {
  return start(next_id_++, address.host(), address.port(), &address, std::move(handler), options,
               0);
}

ConnectId Connector::start(ConnectId id, std::string_view host, uint16_t port,
                           const Address* address, std::unique_ptr<StreamHandler> handler,
                           const ConnectOptions& options, ConnectId keeper) {
  loop_.assert_in_loop_thread();
  // Tearing down (a handler connecting again from its on_close(shutdown)): refused, the
  // handler dropped without a call.
  if (!*alive_) return 0;
  auto p = std::make_unique<Pending>();
  Pending& pr = *p;
  pr.id = id;
  pr.host = std::string(host);
  pr.port = port;
  pr.handler = std::move(handler);
  pr.options = options;
  pr.keeper = keeper;
  pending_.push_back(std::move(p));
  pr.deadline = loop_.run_after(options.timeout, [this, id] {
    if (Pending* q = find(id)) {
      q->deadline = {};
      fail(*q, std::make_error_code(std::errc::timed_out));
    }
  });
  if (address) {
    // Still never inside this call.
    loop_.defer([this, id, a = *address, alive = std::weak_ptr<bool>(alive_)] {
      if (alive.expired() || !*alive.lock()) return;
      if (Pending* q = find(id)) resolved(*q, Addresses{a});
    });
  } else {
    pr.resolving = resolver_.resolve(host, port, [this, id](Result<Addresses> r) {
      if (Pending* q = find(id)) {
        q->resolving = 0;
        resolved(*q, std::move(r));
      }
    });
  }
  return id;
}

ConnectId Connector::keep_connected(std::string_view host, uint16_t port,
                                    StreamHandlerFactory factory, const ReconnectOptions& reconnect,
                                    const ConnectOptions& options) {
  loop_.assert_in_loop_thread();
  if (!*alive_) return 0;
  ConnectId id = next_id_++;
  keepers_.push_back(std::make_unique<Keeper>(id, std::string(host), port, std::move(factory),
                                              Backoff(reconnect, seed_ + id), options));
  arm_keeper(*keepers_.back(), Duration::zero());  // the first attempt at once (after this call)
  return id;
}

Connector::Keeper* Connector::find_keeper(ConnectId id) noexcept {
  for (auto& k : keepers_)
    if (k->id == id) return k.get();
  return nullptr;
}

void Connector::schedule_reconnect(Keeper& k) {
  ++stats_.reconnects;
  arm_keeper(k, k.backoff.next());
}

void Connector::arm_keeper(Keeper& k, Duration wait) {
  ConnectId kid = k.id;
  k.retry = loop_.run_after(wait, [this, kid] {
    Keeper* kp = find_keeper(kid);
    if (!kp) return;
    kp->retry = {};
    // The factory may cancel this very keeper (or destroy the connector): look again.
    std::weak_ptr<bool> alive = alive_;
    std::unique_ptr<StreamHandler> h = kp->factory();
    if (alive.expired() || !(kp = find_keeper(kid))) return;
    if (!h) {
      log_warn("connector: the handler factory for {}:{} refused; trying again later", kp->host,
               kp->port);
      schedule_reconnect(*kp);
      return;
    }
    ConnectId pid = next_id_++;
    kp->pending = pid;
    start(pid, kp->host, kp->port, nullptr, std::move(h), kp->options, kid);
  });
}

bool Connector::cancel(ConnectId id) noexcept {
  auto kit = std::find_if(keepers_.begin(), keepers_.end(), [&](auto& k) { return k->id == id; });
  if (kit != keepers_.end()) {
    std::unique_ptr<Keeper> k = std::move(*kit);
    keepers_.erase(kit);
    if (k->retry) loop_.cancel_timer(k->retry);
    if (k->pending) cancel(k->pending);
    if (StreamConnection* c = k->connection) {
      // shut_down() leaves the object to its owner: take it out of the list first.
      std::unique_ptr<Disposable> self = release(*c);  // no keeper left to reconnect
      c->shut_down();
      if (self) loop_.dispose_later(std::move(self));
    }
    return true;
  }
  Pending* p = find(id);
  if (!p) return false;
  ++stats_.cancelled;
  p->handler.reset();  // destroyed without a callback
  finish(*p);
  return true;
}

Connector::Pending* Connector::find(ConnectId id) noexcept {
  for (auto& p : pending_)
    if (p->id == id) return p.get();
  return nullptr;
}

void Connector::resolved(Pending& p, Result<Addresses> result) {
  if (!result) {
    p.last_error = result.error();
    fail(p, result.error());
    return;
  }
  Addresses list = interleave(*result);
  if (p.options.local) {
    int family = p.options.local->family();
    std::erase_if(list, [&](const Address& a) { return a.family() != family; });
    if (list.empty()) {
      fail(p, std::make_error_code(std::errc::address_family_not_supported));
      return;
    }
  }
  p.addresses = std::move(list);
  start_next_attempt(p);
}

void Connector::start_next_attempt(Pending& p) {
  while (p.next < p.addresses.size()) {
    const Address& to = p.addresses[p.next++];
    ConnectId id = p.id;
    auto a = std::make_unique<Attempt>(loop_, to, [this, id](Attempt& ar) {
      if (Pending* q = find(id)) attempt_ready(*q, ar);
    });
    ++stats_.attempts;
    p.last_address = to;
    int err = open_and_connect(to, p.options.local, a->fd);
    if (err == 0) {
      connected(p, *a);
      return;
    }
    if (err == EINPROGRESS) {
      Attempt& ar = *a;
      if (auto r = ar.watcher.start(ar.fd.get(), Interest::write); !r) {
        p.last_error = r.error();
        continue;  // this one cannot be watched (select's FD_SETSIZE): the next address
      }
      p.attempts.push_back(std::move(a));
      if (p.next < p.addresses.size()) {
        ConnectId pid = p.id;
        if (p.delay) loop_.cancel_timer(p.delay);
        p.delay = loop_.run_after(p.options.attempt_delay, [this, pid] {
          if (Pending* q = find(pid)) {
            q->delay = {};
            start_next_attempt(*q);
          }
        });
      }
      return;
    }
    p.last_error = make_error(err);  // failed at once (ENETUNREACH for a family not routed)
  }
  if (p.attempts.empty()) fail(p, p.last_error ? p.last_error : make_error(ECONNREFUSED));
}

void Connector::attempt_ready(Pending& p, Attempt& a) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(a.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == 0) {
    // Writable with no error is connected; make sure (a spurious wake-up is not).
    sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (::getpeername(a.fd.get(), reinterpret_cast<sockaddr*>(&ss), &sl) != 0) {
      if (errno == ENOTCONN) return;  // not yet
      err = errno;
    }
  }
  if (err == 0) connected(p, a);
  else attempt_finished(p, a, err);
}

void Connector::attempt_finished(Pending& p, Attempt& a, int err) {
  p.last_error = make_error(err);
  p.last_address = a.address;
  a.watcher.stop();
  auto it = std::find_if(p.attempts.begin(), p.attempts.end(), [&](auto& x) { return x.get() == &a; });
  if (it != p.attempts.end()) {
    loop_.dispose_later(std::move(*it));  // we are inside its watcher's callback
    p.attempts.erase(it);
  }
  // A failure starts the next address at once, without waiting out the delay.
  if (p.next < p.addresses.size()) {
    if (p.delay) loop_.cancel_timer(std::exchange(p.delay, {}));
    start_next_attempt(p);
  } else if (p.attempts.empty()) {
    fail(p, p.last_error);
  }
}

void Connector::connected(Pending& p, Attempt& a) {
  a.watcher.stop();
  Fd fd = std::move(a.fd);
  Address peer = a.address;
  Address local = Address::local_of(fd.get(), Address());
  std::unique_ptr<StreamHandler> handler = std::move(p.handler);
  ConnectId keeper_id = p.keeper;
  ConnectionOptions copts = p.options.connection;
  std::shared_ptr<TlsClientContext> tls = p.options.tls;
  std::string server_name = p.options.tls_server_name.empty() ? p.host : p.options.tls_server_name;
  finish(p);  // the other attempts are closed; `a` and `p` are gone after this

  int raw = fd.get();
  auto conn = std::make_unique<TcpConnection>(loop_, std::move(fd), peer, local,
                                              std::move(handler), copts);
  TcpConnection& c = *conn;
  if (tls) {
    auto layer = make_client_layer(*tls, raw, server_name, server_name + "@" + peer.to_string());
    if (!layer) {
      std::unique_ptr<StreamHandler> h = c.take_unstarted_handler();
      report_failure(std::move(h), keeper_id, peer, make_error(TlsErrc::handshake_failed),
                     "connect to " + peer.to_string() + ": cannot start a TLS session");
      return;
    }
    c.use_tls(std::move(layer));
  }
  c.attach(this, nullptr);
  c.set_owner_index(connections_.size());
  connections_.push_back(std::move(conn));
  Keeper* keeper = find_keeper(keeper_id);
  if (keeper) {
    keeper->pending = 0;
    keeper->connection = &c;
  }
  // start() may call the handler (on_open; over TLS a handshake failed at once), and a
  // handler may destroy this connector.
  std::weak_ptr<bool> alive = alive_;
  auto r = c.start();
  if (alive.expired()) return;
  if (!r) {
    // Never registered, never opened (rare: the poller took this descriptor a moment ago):
    // the handler hears the failure as for any other connect.
    if (keeper) keeper->connection = nullptr;
    std::unique_ptr<StreamHandler> h = c.take_unstarted_handler();
    std::unique_ptr<Disposable> self = remove(c);
    if (self) loop_.dispose_later(std::move(self));
    report_failure(std::move(h), keeper_id, peer, r.error(),
                   "connect to " + peer.to_string() + ": connected, but the socket cannot be "
                   "watched: " + r.error().message());
    return;
  }
}

// Counted here, not at the TCP connect: over TLS a connection is made once its handshake
// is done (one that fails is a failed connect, and does not reset a keeper's backoff).
void Connector::opened(StreamConnection& conn) noexcept {
  ++stats_.connected;
  for (auto& k : keepers_)
    if (k->connection == &conn) k->connected_at = loop_.now();
}

void Connector::fail(Pending& p, std::error_code ec) {
  std::string text = "connect to ";
  bool numeric = p.addresses.size() == 1 && p.addresses[0].host() == p.host;
  if (numeric || p.addresses.empty()) {
    text += p.addresses.empty() ? p.host + ":" + std::to_string(p.port)
                                : p.addresses[0].to_string();
  } else {
    text += p.host + ":" + std::to_string(p.port) + " (";
    for (size_t i = 0; i < p.next && i < p.addresses.size(); ++i)
      text += (i ? ", " : "") + p.addresses[i].to_string();
    text += ")";
  }
  text += ": " + ec.message();
  if (ec == std::errc::timed_out && p.resolving) text += " (resolving the name)";
  Address where = p.last_address;
  std::unique_ptr<StreamHandler> handler = std::move(p.handler);
  ConnectId keeper_id = p.keeper;
  finish(p);
  report_failure(std::move(handler), keeper_id, where, ec, std::move(text));
}

void Connector::report_failure(std::unique_ptr<StreamHandler> handler, ConnectId keeper_id,
                               const Address& where, std::error_code ec, std::string text) {
  ++stats_.failed;
  if (Keeper* k = find_keeper(keeper_id)) k->pending = 0;
  if (handler) {
    UnconnectedConnection stand_in(loop_, where);
    std::weak_ptr<bool> alive = alive_;
    handler->on_close(stand_in, CloseInfo{CloseReason::connect_failed, ec, std::move(text)});
    if (alive.expired()) return;  // the handler destroyed this connector
  }
  // Looked up again: the handler's on_close may have cancelled the keeper.
  if (Keeper* k = find_keeper(keeper_id)) schedule_reconnect(*k);
}

void Connector::finish(Pending& p) noexcept {
  if (p.resolving) resolver_.cancel(std::exchange(p.resolving, 0));
  if (p.deadline) loop_.cancel_timer(std::exchange(p.deadline, {}));
  if (p.delay) loop_.cancel_timer(std::exchange(p.delay, {}));
  for (auto& a : p.attempts) {
    a->watcher.stop();
    a->fd.reset();
    loop_.dispose_later(std::move(a));  // one of them may be the caller
  }
  p.attempts.clear();
  auto it = std::find_if(pending_.begin(), pending_.end(), [&](auto& x) { return x.get() == &p; });
  if (it != pending_.end()) {
    loop_.dispose_later(std::move(*it));
    pending_.erase(it);
  }
}

std::unique_ptr<Disposable> Connector::release(StreamConnection& conn) noexcept {
  if (!conn.began()) ++stats_.failed;  // a TLS handshake that failed: on_close(connect_failed)
  for (auto& k : keepers_)
    if (k->connection == &conn) {
      k->connection = nullptr;
      if (conn.began() && loop_.now() - k->connected_at >= k->backoff.options().stable_after)
        k->backoff.reset();
      schedule_reconnect(*k);
      break;
    }
  return remove(conn);
}

std::unique_ptr<Disposable> Connector::remove(StreamConnection& conn) noexcept {
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
