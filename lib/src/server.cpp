// Server: loops, threads, per-loop listeners (SO_REUSEPORT or one acceptor handing off),
// drain and stop, signals, and counter totals.
#include "netloop/server.hpp"

#include <algorithm>
#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "netloop/log.hpp"

namespace netloop {

struct Server::Loop {
  size_t index = 0;
  std::unique_ptr<EventLoop> loop;
  // Touched by the loop thread; the mutex is only for readers on other threads (totals)
  // against finish() emptying them: the accept and I/O paths never take it.
  std::mutex registry;
  std::vector<std::unique_ptr<TcpListener>> listeners;
  struct Socket {
    size_t registration;
    std::unique_ptr<UdpSocket> socket;
  };
  std::vector<Socket> sockets;
  ServerTotals retired;  // counters of listeners and sockets already closed
  std::thread thread;
  TimerId drain_check;
  TimerId drain_deadline;
  bool finished = false;  // loop thread only
};

namespace {

std::error_code fail_with(std::string* why, std::string text, std::error_code ec) {
  if (why) *why = std::move(text) + ": " + ec.message();
  return ec;
}

// A UDP port on `address`'s host that no socket holds now: bound without SO_REUSEPORT,
// so the kernel cannot hand out a port some other socket shares.
Result<uint16_t> pick_free_udp_port(const Address& address) {
  Fd probe(::socket(address.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!probe) return last_error();
  if (address.is_ipv6()) {
    int one = 1;
    ::setsockopt(probe.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(probe.get(), address.sockaddr_ptr(), address.length()) < 0) return last_error();
  uint16_t port = Address::local_of(probe.get(), address).port();
  if (port == 0) return make_error(EADDRNOTAVAIL);  // the kernel would not say which
  return port;
}

void add_listener_stats(ServerTotals& t, const ListenerStats& s) {
  t.accepted += s.accepted;
  t.refused += s.refused;
  t.refused_per_client += s.refused_per_client;
  t.accept_errors += s.accept_errors;
  t.dropped_no_fds += s.dropped_no_fds;
  t.proxy_protocol.accepted += s.proxy_protocol.accepted;
  t.proxy_protocol.untrusted += s.proxy_protocol.untrusted;
  t.proxy_protocol.invalid += s.proxy_protocol.invalid;
  t.proxy_protocol.timeouts += s.proxy_protocol.timeouts;
  t.proxy_protocol.aborted += s.proxy_protocol.aborted;
}

void add_udp_stats(ServerTotals& t, const UdpStats& s) {
  t.datagrams_in += s.datagrams_in;
  t.datagrams_out += s.datagrams_out;
  t.datagrams_dropped +=
      s.dropped_truncated + s.dropped_send_full + s.dropped_too_large + s.dropped_send_error;
  t.udp_peer_errors += s.peer_errors;
}

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {
  if (options_.threads == 0) options_.threads = 1;
}

Server::~Server() {
  stop();
  for (auto& l : loops_)
    if (l->thread.joinable()) l->thread.join();
}

EventLoop& Server::loop(size_t i) noexcept { return *loops_[i]->loop; }

void Server::add_stream(std::string name, Address address, StreamSetup setup, Loops loops) {
  streams_.push_back({std::move(name), address, std::move(setup), loops == Loops::every});
}

void Server::add_datagram(std::string name, Address address, DatagramSetup setup,
                          Loops loops) {
  datagrams_.push_back({std::move(name), address, std::move(setup), loops == Loops::every});
}

Result<void> Server::start(std::string* why) { return start({}, why); }

Result<void> Server::start(std::vector<ListeningSocket> inherited, std::string* why) {
  if (started_.exchange(true)) return make_error(EALREADY);
  inherited_ = std::move(inherited);
  // Whatever is left of them when start() returns, taken or not, is closed then.
  struct CloseLeft {
    std::vector<ListeningSocket>& left;
    ~CloseLeft() {
      for (const auto& s : left)
        log_warn("inherited {} socket {} on {} (loop {}): no registration here takes it; "
                 "closed", s.datagram ? "datagram" : "stream", s.name, s.address, s.loop);
      left.clear();
    }
  } close_left{inherited_};
  for (size_t i = 0; i < options_.threads; ++i) {
    std::string reason;
    auto loop = EventLoop::create(options_.poller, &reason);
    if (!loop) {
      if (why) *why = reason;
      return loop.error();
    }
    auto l = std::make_unique<Loop>();
    l->index = i;
    l->loop = std::move(*loop);
    loops_.push_back(std::move(l));
  }
  if (options_.max_connections > 0)
    limit_ = std::make_shared<ConnectionLimit>(options_.max_connections);
  if (options_.max_connections_per_client > 0)
    client_limit_ = std::make_shared<ClientConnectionLimit>(options_.max_connections_per_client,
                                                            options_.client_ipv6_prefix);
  for (const auto& reg : streams_)
    if (auto ec = bind_stream(reg, why)) return ec;
  retired_udp_.resize(datagrams_.size());
  for (const auto& reg : datagrams_)
    if (auto ec = bind_datagram(reg, why)) return ec;
  return {};
}

std::error_code Server::bind_stream(const StreamReg& reg, std::string* why) {
  size_t n = reg.every_loop ? loops_.size() : 1;
  std::vector<StreamService> services;
  for (size_t i = 0; i < n; ++i) services.push_back(reg.setup(*loops_[i]->loop, i));
  ListenerOptions lo = options_.listener;
  lo.limit = services[0].unlimited ? nullptr : limit_;
  lo.client_limit = services[0].unlimited ? nullptr : client_limit_;
  lo.refusal_factory = services[0].refusal_factory;
  lo.tls = services[0].tls;
  if (services[0].proxy_protocol) lo.proxy_protocol = services[0].proxy_protocol;
  lo.reuse_port = (n > 1 || options_.handover_source) && options_.reuse_port;
  const std::string what = reg.name + " on " + reg.address.to_string();
  std::vector<Fd> inherited = take_inherited(reg.name, false, reg.address);
  auto options_for = [&](size_t i) {
    ListenerOptions li = lo;
    li.refusal_factory = services[i].refusal_factory;
    li.tls = services[i].tls;
    return li;
  };

  Result<std::unique_ptr<TcpListener>> first = make_error(EINVAL);
  if (!inherited.empty()) {
    Address local = Address::local_of(inherited[0].get(), reg.address);
    if (n > 1 && !options_.reuse_port) {  // the inherited sockets become the acceptors
      bound_.push_back({reg.name, local, false});
      return hand_off_to_loops(n, services, lo, local, std::move(inherited), reg, why);
    }
    first = TcpListener::from_descriptor(*loops_[0]->loop, std::move(inherited[0]),
                                         services[0].factory, lo);
    if (!first) return fail_with(why, "cannot serve the inherited socket (" + what + ")",
                                 first.error());
  } else {
    first = TcpListener::listen(*loops_[0]->loop, reg.address, services[0].factory, lo);
    if (!first && lo.reuse_port && (first.error().value() == ENOPROTOOPT ||
                                    first.error().value() == ENOTSUP)) {
      log_warn("{}: SO_REUSEPORT is not available ({}); one acceptor hands connections to "
               "the loops", what, first.error().message());
      lo.reuse_port = false;
      options_.reuse_port = false;
      first = TcpListener::listen(*loops_[0]->loop, reg.address, services[0].factory, lo);
    }
    if (!first) return fail_with(why, "cannot listen (" + what + ")", first.error());
  }
  Address local = (*first)->local_address();
  bound_.push_back({reg.name, local, false});

  if (n > 1 && !lo.reuse_port) {
    first->reset();  // listens again, as the acceptor
    return hand_off_to_loops(n, services, lo, local, {}, reg, why);
  }

  if (auto ec = keep_copy(reg.name, 0, (*first)->descriptor(), &lo))
    return fail_with(why, "cannot keep a copy (" + what + ")", ec);
  loops_[0]->listeners.push_back(std::move(*first));
  // Inherited socket k on loop k % n; loops left without one bind their own.
  for (size_t k = 1; k < std::max(n, inherited.size()); ++k) {
    size_t i = k % n;
    auto l = k < inherited.size()
                 ? TcpListener::from_descriptor(*loops_[i]->loop, std::move(inherited[k]),
                                                services[i].factory, options_for(i))
                 : TcpListener::listen(*loops_[i]->loop, local, services[i].factory,
                                       options_for(i));
    if (!l) return fail_with(why, "cannot listen (" + what + ", loop " + std::to_string(i) + ")",
                             l.error());
    if (auto ec = keep_copy(reg.name, i, (*l)->descriptor(), &lo))
      return fail_with(why, "cannot keep a copy (" + what + ")", ec);
    loops_[i]->listeners.push_back(std::move(*l));
  }
  return {};
}

// One acceptor (loop 0) and an adopter per loop: connections go round the loops. The
// acceptors are `acceptors` (inherited) or, without them, a new listener on `local`.
std::error_code Server::hand_off_to_loops(size_t n, const std::vector<StreamService>& services,
                                          const ListenerOptions& lo, const Address& local,
                                          std::vector<Fd> acceptors, const StreamReg& reg,
                                          std::string* why) {
  const std::string what = reg.name + " on " + reg.address.to_string();
  auto targets = std::make_shared<std::vector<std::pair<Loop*, TcpListener*>>>();
  ListenerOptions acceptor = lo;
  acceptor.limit = nullptr;  // the adopters count
  acceptor.hand_off = [targets, next = size_t(0)](Fd fd, const Address& peer) mutable {
    auto [target, adopter] = (*targets)[next++ % targets->size()];
    if (target->index == 0) {  // this loop: no hop
      adopter->adopt_accepted(std::move(fd), peer);
      return;
    }
    int raw = fd.release();
    target->loop->post([target = target, adopter = adopter, raw, peer] {
      if (target->finished) {  // that loop is shutting down: its adopter is gone
        ::close(raw);
        return;
      }
      adopter->adopt_accepted(Fd(raw), peer);
    });
  };
  for (size_t k = 0; k < std::max<size_t>(acceptors.size(), 1); ++k) {
    auto acc = acceptors.empty()
                   ? TcpListener::listen(*loops_[0]->loop, local, services[0].factory, acceptor)
                   : TcpListener::from_descriptor(*loops_[0]->loop, std::move(acceptors[k]),
                                                  services[0].factory, acceptor);
    if (!acc) return fail_with(why, "cannot listen (" + what + ")", acc.error());
    if (auto ec = keep_copy(reg.name, 0, (*acc)->descriptor(), &acceptor))
      return fail_with(why, "cannot keep a copy (" + what + ")", ec);
    loops_[0]->listeners.push_back(std::move(*acc));
  }
  for (size_t i = 0; i < n; ++i) {
    ListenerOptions ao = lo;
    ao.refusal_factory = services[i].refusal_factory;
    ao.tls = services[i].tls;
    auto a = TcpListener::adopter(*loops_[i]->loop, local, services[i].factory, ao);
    targets->emplace_back(loops_[i].get(), a.get());
    loops_[i]->listeners.push_back(std::move(a));
  }
  return {};
}

std::error_code Server::bind_datagram(const DatagramReg& reg, std::string* why) {
  // Without SO_REUSEPORT a UDP port is served by loop 0 alone.
  size_t n = reg.every_loop && options_.reuse_port ? loops_.size() : 1;
  UdpOptions uo = options_.udp;
  uo.reuse_port = (n > 1 || options_.handover_source) && options_.reuse_port;
  const std::string what = reg.name + " on " + reg.address.to_string();
  const size_t registration = size_t(&reg - datagrams_.data());
  std::vector<Fd> inherited = take_inherited(reg.name, true, reg.address);

  // Linux gives a UDP socket with SO_REUSEPORT that binds port 0 a port other SO_REUSEPORT
  // sockets of the same user may already hold (TCP never does): this server would join
  // their group and share their datagrams. So an exclusive socket picks the port, and
  // loop 0 binds it at once. (Between the two another process's SO_REUSEPORT socket
  // could still take the port and go unnoticed; an exclusive one makes our bind fail, and
  // we pick again. No socket API closes that window of a few microseconds entirely.)
  const bool pick = uo.reuse_port && reg.address.port() == 0;
  Address address = reg.address;
  Result<std::unique_ptr<UdpSocket>> first = make_error(EADDRINUSE);
  if (!inherited.empty()) {
    first = UdpSocket::from_descriptor(*loops_[0]->loop, std::move(inherited[0]),
                                       reg.setup(*loops_[0]->loop, 0), uo);
    if (!first) return fail_with(why, "cannot serve the inherited socket (" + what + ")",
                                 first.error());
  }
  for (int attempt = 0; attempt < 16 && inherited.empty(); ++attempt) {
    if (pick) {
      auto port = pick_free_udp_port(reg.address);
      if (!port) return fail_with(why, "cannot bind (" + what + ")", port.error());
      address.set_port(*port);
    }
    first = UdpSocket::bind(*loops_[0]->loop, address, reg.setup(*loops_[0]->loop, 0), uo);
    if (first || !pick || first.error() != std::errc::address_in_use) break;
  }
  if (!first) return fail_with(why, "cannot bind (" + what + ")", first.error());
  address = (*first)->local_address();
  bound_.push_back({reg.name, address, true});
  if (auto ec = keep_copy(reg.name, 0, (*first)->descriptor(), nullptr))
    return fail_with(why, "cannot keep a copy (" + what + ")", ec);
  loops_[0]->sockets.push_back({registration, std::move(*first)});

  // Inherited socket k on loop k % n; loops left without one bind their own.
  for (size_t k = 1; k < std::max(n, inherited.size()); ++k) {
    size_t i = k % n;
    auto s = k < inherited.size()
                 ? UdpSocket::from_descriptor(*loops_[i]->loop, std::move(inherited[k]),
                                              reg.setup(*loops_[i]->loop, i), uo)
                 : UdpSocket::bind(*loops_[i]->loop, address, reg.setup(*loops_[i]->loop, i), uo);
    if (!s) return fail_with(why, "cannot bind (" + what + ", loop " + std::to_string(i) + ")",
                             s.error());
    if (auto ec = keep_copy(reg.name, i, (*s)->descriptor(), nullptr))
      return fail_with(why, "cannot keep a copy (" + what + ")", ec);
    loops_[i]->sockets.push_back({registration, std::move(*s)});
  }
  return {};
}

std::vector<Fd> Server::take_inherited(const std::string& name, bool datagram,
                                       const Address& at) {
  auto matches = [&](const ListeningSocket& s) {
    if (s.name != name || s.datagram != datagram || !s.fd) return false;
    if (at.port() == 0) return s.address.family() == at.family() && s.address.host() == at.host();
    return s.address == at;
  };
  std::vector<ListeningSocket> mine;
  for (auto it = inherited_.begin(); it != inherited_.end();) {
    if (matches(*it)) {
      mine.push_back(std::move(*it));
      it = inherited_.erase(it);
    } else {
      ++it;
    }
  }
  std::stable_sort(mine.begin(), mine.end(),
                   [](const ListeningSocket& a, const ListeningSocket& b) { return a.loop < b.loop; });
  std::vector<Fd> out;
  for (auto& s : mine) out.push_back(std::move(s.fd));
  return out;
}

std::error_code Server::keep_copy(const std::string& name, size_t loop, int fd,
                                  const ListenerOptions* listener) {
  if (!options_.handover_source) return {};
  Fd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) return last_error();
  Address local = Address::local_of(copy.get(), Address());
  KeptCopy kept{{name, local, loop, listener == nullptr, std::move(copy)}, {}};
  if (listener) {  // what TcpListener::apply_socket_options looks at
    kept.settings.backlog = listener->backlog;
    kept.settings.defer_accept = listener->defer_accept;
    kept.settings.proxy_protocol = listener->proxy_protocol;
  }
  std::lock_guard<std::mutex> lock(copies_mutex_);
  copies_.push_back(std::move(kept));
  return {};
}

void Server::drop_copies() {
  std::vector<KeptCopy> copies;
  std::lock_guard<std::mutex> lock(copies_mutex_);
  copies_closed_ = true;
  copies.swap(copies_);
}

void Server::restore_socket_options() {
  std::lock_guard<std::mutex> lock(copies_mutex_);
  for (const auto& c : copies_)
    if (!c.socket.datagram)
      TcpListener::apply_socket_options(c.socket.fd.get(), c.settings, c.socket.address);
}

Result<std::vector<ListeningSocket>> Server::listening_sockets() const {
  if (!options_.handover_source) return make_error(ENOTSUP);
  std::lock_guard<std::mutex> lock(copies_mutex_);
  if (copies_closed_ || draining()) return make_error(ECANCELED);
  if (!started_.load() || copies_.empty()) return make_error(ENOTCONN);
  std::vector<ListeningSocket> out;
  for (const auto& kept : copies_) {
    const ListeningSocket& c = kept.socket;
    Fd fd(::fcntl(c.fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!fd) return last_error();
    out.push_back({c.name, c.address, c.loop, c.datagram, std::move(fd)});
  }
  return out;
}

void Server::run() {
  if (loops_.empty()) return;
  auto body = [this](Loop& l) {
    l.loop->run();
    // On the loop's own thread: listeners and sockets close here.
    finish(l);
  };
  for (size_t i = 1; i < loops_.size(); ++i) {
    Loop& l = *loops_[i];
    l.thread = std::thread([body, &l] { body(l); });
  }
  body(*loops_[0]);
  for (size_t i = 1; i < loops_.size(); ++i)
    if (loops_[i]->thread.joinable()) loops_[i]->thread.join();
}

void Server::stop() {
  drop_copies();
  for (auto& lp : loops_) {
    Loop* l = lp.get();
    l->loop->post([this, l] { finish(*l); });
  }
}

void Server::drain() {
  if (draining_.exchange(true)) return;
  drop_copies();  // the copies of the listening sockets must not keep them open
  for (auto& lp : loops_) {
    Loop* l = lp.get();
    l->loop->post([this, l] { begin_drain(*l); });
  }
}

void Server::begin_drain(Loop& l) {
  if (l.finished) return;
  for (auto& listener : l.listeners) listener->drain();
  retire_sockets(l);  // datagrams have nothing in flight to wait for
  auto idle = [&l] {
    for (auto& listener : l.listeners)
      if (listener->busy_connection_count() > 0) return false;
    return true;
  };
  if (idle()) {
    finish(l);
    return;
  }
  l.drain_check = l.loop->run_every(milliseconds(20), [this, &l, idle] {
    if (idle()) finish(l);
  });
  l.drain_deadline = l.loop->run_after(options_.drain_timeout, [this, &l] {
    l.drain_deadline = {};
    size_t left = 0;
    for (auto& listener : l.listeners) left += listener->busy_connection_count();
    log_warn("drain timeout: closing {} connection(s) still open on loop {}", left, l.index);
    finish(l);
  });
}

void Server::finish(Loop& l) {
  if (l.finished) return;
  l.finished = true;
  if (l.drain_check) l.loop->cancel_timer(std::exchange(l.drain_check, {}));
  if (l.drain_deadline) l.loop->cancel_timer(std::exchange(l.drain_deadline, {}));
  std::vector<std::unique_ptr<TcpListener>> listeners;
  {
    std::lock_guard<std::mutex> lock(l.registry);
    for (auto& listener : l.listeners) add_listener_stats(l.retired, listener->stats());
    listeners.swap(l.listeners);
  }
  listeners.clear();  // closes what is left: CloseReason::shutdown
  retire_sockets(l);
  // Every loop keeps running until all are done: loop 0 handles the signals (a second
  // SIGTERM, SIGUSR1), and a connection the acceptor hands to a finished loop must still
  // reach it, to be closed. The last one to finish stops them all.
  if (finished_loops_.fetch_add(1) + 1 == loops_.size())
    for (auto& other : loops_) other->loop->stop();
}

void Server::retire_sockets(Loop& l) {
  for (auto& s : l.sockets) s.socket->settle();  // replies still queued count in the totals
  std::vector<Loop::Socket> sockets;
  {
    // Lock order: retired_udp_mutex_, then a loop's registry (as datagram_stats does), so
    // a reader never sees a socket both live and retired.
    std::lock_guard<std::mutex> lock2(retired_udp_mutex_);
    std::lock_guard<std::mutex> lock(l.registry);
    for (auto& s : l.sockets) {
      add_udp_stats(l.retired, s.socket->stats());
      retired_udp_[s.registration] += s.socket->stats();
    }
    sockets.swap(l.sockets);
  }
}

Result<void> Server::handle_signals(std::function<void()> on_usr1) {
  if (loops_.empty()) return make_error(EINVAL);
  EventLoop& l0 = *loops_[0]->loop;
  for (int sig : {SIGTERM, SIGINT}) {
    auto r = l0.on_signal(sig, [this, sig] {
      const char* name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
      if (++signals_seen_ == 1) {
        log_info("{}: draining (up to {} ms); send it again to stop at once", name,
                 std::chrono::duration_cast<milliseconds>(options_.drain_timeout).count());
        drain();
      } else {
        log_info("{} again: stopping now", name);
        stop();
      }
    });
    if (!r.ok()) return r.error();
  }
  if (on_usr1) {
    if (auto r = l0.on_signal(SIGUSR1, std::move(on_usr1)); !r) return r.error();
  }
  return {};
}

ServerTotals& ServerTotals::operator+=(const ServerTotals& o) noexcept {
  connections_open += o.connections_open;
  accepted += o.accepted;
  refused += o.refused;
  refused_per_client += o.refused_per_client;
  accept_errors += o.accept_errors;
  dropped_no_fds += o.dropped_no_fds;
  tcp_bytes_in += o.tcp_bytes_in;
  tcp_bytes_out += o.tcp_bytes_out;
  closed_local += o.closed_local;
  closed_peer += o.closed_peer;
  closed_aborted += o.closed_aborted;
  closed_reset += o.closed_reset;
  closed_error += o.closed_error;
  closed_shutdown += o.closed_shutdown;
  closed_protocol += o.closed_protocol;
  closed_idle += o.closed_idle;
  write_timeouts += o.write_timeouts;
  datagrams_in += o.datagrams_in;
  datagrams_out += o.datagrams_out;
  datagrams_dropped += o.datagrams_dropped;
  udp_peer_errors += o.udp_peer_errors;
  proxy_protocol.accepted += o.proxy_protocol.accepted;
  proxy_protocol.untrusted += o.proxy_protocol.untrusted;
  proxy_protocol.invalid += o.proxy_protocol.invalid;
  proxy_protocol.timeouts += o.proxy_protocol.timeouts;
  proxy_protocol.aborted += o.proxy_protocol.aborted;
  return *this;
}

ServerTotals Server::totals() const {
  ServerTotals t;
  for (const auto& lp : loops_) {
    Loop& l = *lp;
    const LoopStats& s = l.loop->stats();
    t.connections_open += s.connections_open;
    t.tcp_bytes_in += s.tcp_bytes_in;
    t.tcp_bytes_out += s.tcp_bytes_out;
    t.closed_local += s.closed_local;
    t.closed_peer += s.closed_peer;
    t.closed_aborted += s.closed_aborted;
    t.closed_reset += s.closed_reset;
    t.closed_error += s.closed_error;
    t.closed_shutdown += s.closed_shutdown;
    t.closed_protocol += s.closed_protocol;
    t.closed_idle += s.closed_idle;
    t.write_timeouts += s.write_timeouts;
    std::lock_guard<std::mutex> lock(l.registry);
    t += l.retired;  // only listener and socket counters are ever retired
    for (const auto& listener : l.listeners) add_listener_stats(t, listener->stats());
    for (const auto& s2 : l.sockets) add_udp_stats(t, s2.socket->stats());
  }
  return t;
}

UdpStats Server::datagram_stats(size_t registration) const {
  UdpStats out;
  std::lock_guard<std::mutex> retired(retired_udp_mutex_);  // held throughout: see retire_sockets
  for (const auto& lp : loops_) {
    std::lock_guard<std::mutex> lock(lp->registry);
    for (const auto& s : lp->sockets)
      if (s.registration == registration) out += s.socket->stats();
  }
  if (registration < retired_udp_.size()) out += retired_udp_[registration];
  return out;
}

std::vector<uint64_t> Server::accepted_per_loop() const {
  std::vector<uint64_t> out;
  for (const auto& lp : loops_) {
    std::lock_guard<std::mutex> lock(lp->registry);
    uint64_t n = lp->retired.accepted;
    for (const auto& listener : lp->listeners) n += listener->stats().accepted;
    out.push_back(n);
  }
  return out;
}

}  // namespace netloop
