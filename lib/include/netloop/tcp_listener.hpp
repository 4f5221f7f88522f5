// TcpListener: a listening TCP socket that accepts in batches and owns the connections
// it accepted, each driving a handler made by the factory.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/counter.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/io_watcher.hpp"
#include "netloop/fd.hpp"
#include "netloop/client_limit.hpp"
#include "netloop/connection_limit.hpp"
#include "netloop/protocol.hpp"
#include "netloop/tcp_connection.hpp"
#include "netloop/tls.hpp"

namespace netloop {

struct ProxyProtocolOptions;  // netloop/proxy_protocol_options.hpp

struct ListenerOptions {
  int backlog = 4096;       // the kernel caps it at net.core.somaxconn
  bool reuse_port = false;  // SO_REUSEPORT: one listener per loop on the same port
  size_t accept_batch = 64; // accepts per readiness event, so one listener cannot starve the rest
  ConnectionOptions connection{};
  // Past this many connections (null: no limit) a new one is accepted and refused at
  // once, never left in the backlog to time out: handed to a handler from
  // `refusal_factory` (an HTTP 503, say) with a short linger, or closed at once without
  // one; counted in stats().refused.
  std::shared_ptr<ConnectionLimit> limit{};
  StreamHandlerFactory refusal_factory{};
  // Past client_limit->per_client() connections from one client (an IPv4 address, an IPv6
  // /64), refused the same way; counted in stats().refused_per_client. Null: no limit.
  std::shared_ptr<ClientConnectionLimit> client_limit{};
  // When set, accepted descriptors go here instead of becoming connections of this
  // listener: one acceptor feeding several loops where SO_REUSEPORT is missing (the
  // receiving loop's listener takes them with adopt_accepted()).
  std::function<void(Fd, const Address& peer)> hand_off{};
  // TLS: every accepted connection runs the handshake before its handler's on_open (a
  // handshake that fails or times out closes it without a word to the handler).
  std::shared_ptr<TlsServerContext> tls{};
  // PROXY protocol (null: none expected): every accepted connection first reads the
  // header a load balancer sends, before TLS and before on_open; its source becomes the
  // connection's peer_address(). A peer outside the trusted networks, or a missing,
  // invalid or late header, closes the connection without a word to the handler.
  std::shared_ptr<const ProxyProtocolOptions> proxy_protocol{};
  // Linux: a connection is accepted only once its peer has sent something, or after about
  // this long without (TCP_DEFER_ACCEPT: the kernel rounds it up to its SYN-ACK
  // retransmissions, 1, 3, 7, 15... s; zero: at the handshake, as usual; at most an hour).
  // For protocols whose client speaks first (HTTP, TLS, PROXY): the accept and the first
  // read come in one wake-up instead of two, and a peer that connects and stays silent
  // holds no descriptor meanwhile. Where the server speaks first (SMTP, SSH, MySQL behind
  // a TCP proxy), every connection would wait out the deferral: leave it off. A listener
  // expecting PROXY headers defers for its header_timeout anyway
  // (ProxyProtocolOptions::defer_accept).
  Duration defer_accept = Duration::zero();
};

// ListenerOptions::proxy_protocol: what became of the headers.
struct ProxyProtocolStats {
  Counter accepted;   // read whole and valid: the connection went on
  Counter untrusted;  // the peer is not trusted to send one: closed at accept, unread
  Counter invalid;    // not a valid header (no header at all, say)
  Counter timeouts;   // not whole within the header timeout
  Counter aborted;    // the peer closed or reset before the header was whole
};

struct ListenerStats {
  Counter accepted;
  Counter accept_errors;   // failures that paused accepting (EMFILE with no reserve, ENOBUFS...)
  Counter dropped_no_fds;  // accepted and closed at once because of EMFILE/ENFILE
  Counter unwatchable;     // accepted, but the poller refused them (select: FD_SETSIZE)
  Counter refused;         // accepted and closed at once: past max_connections
  Counter refused_per_client;  // accepted and closed at once: past the client's limit
  Counter factory_refused; // accepted and closed at once: the handler factory returned null
  ProxyProtocolStats proxy_protocol;
};

class TcpListener final : ConnectionOwner {
 public:
  // Binds and listens; errors name the errno (EADDRINUSE, EACCES, EADDRNOTAVAIL...).
  static Result<std::unique_ptr<TcpListener>> listen(EventLoop& loop, const Address& address,
                                                     StreamHandlerFactory factory,
                                                     const ListenerOptions& options = {});
  // Serves an already listening TCP socket (one inherited in a handover): EINVAL when
  // `fd` is not a listening stream socket. Its backlog and accept deferral are set from
  // `options` (apply_socket_options); options.reuse_port is not looked at (it was set, or
  // not, before the socket was bound).
  static Result<std::unique_ptr<TcpListener>> from_descriptor(EventLoop& loop, Fd fd,
                                                              StreamHandlerFactory factory,
                                                              const ListenerOptions& options = {});
  // Sets on the listening socket `fd` what `options` asks of it once bound: the backlog
  // and the accept deferral (defer_accept, or a PROXY listener's). These belong to the
  // socket, so every process holding it shares them: after a handover that failed, the
  // old instance sets its own again. `where` names the socket in a log line.
  static void apply_socket_options(int fd, const ListenerOptions& options, const Address& where);
  // A listener without a socket, for connections accepted elsewhere (hand_off).
  static std::unique_ptr<TcpListener> adopter(EventLoop& loop, const Address& local,
                                              StreamHandlerFactory factory,
                                              const ListenerOptions& options = {});
  ~TcpListener();  // closes the listening socket and every connection (reason shutdown)

  // Loop thread: makes a connection of a descriptor accepted on another loop.
  void adopt_accepted(Fd fd, const Address& peer);

  const Address& local_address() const noexcept { return local_; }
  // The listening socket (-1 once it stopped accepting, or for an adopter): to pass on.
  int descriptor() const noexcept { return fd_.get(); }
  size_t connection_count() const noexcept { return connections_.size(); }
  // Connections that still have something to deliver (see TcpConnection::delivered_all).
  size_t busy_connection_count() const noexcept;
  const ListenerStats& stats() const noexcept { return stats_; }
  // The per-client limit's one check (ListenerOptions::client_limit): counts a connection
  // against the client `peer` names, which is the address the connection reports as its
  // peer when this runs (the accepted one; behind a PROXY header, the one it gives). On
  // success `slot` holds the count (hand it to the connection: hold_client_slot) and is
  // empty when there is no limit; false when the client is at its limit: refuse it.
  bool admit_client(const Address& peer, ClientSlot& slot) noexcept;
  // Counts (and now and then logs) a refusal: refuse() does, and so must whoever refuses
  // a connection admit_client() turned down after accept.
  enum class Refusal : uint8_t { max_connections, per_client };
  void count_refusal(const Address& peer, Refusal why);
  // Closes the listening socket; live connections go on.
  void stop_accepting() noexcept;
  // Graceful shutdown: stops accepting and tells every connection's handler the server
  // is draining (on_server_draining). connection_count() says when they are all gone.
  void drain();

  // Visits live connections (tests and counters).
  template <class F>
  void for_each_connection(F&& f) const {
    for (auto& c : connections_) f(*c);
  }

 private:
  TcpListener(EventLoop& loop, Fd fd, const Address& local, StreamHandlerFactory factory,
              const ListenerOptions& options);
  void on_readable();
  void adopt(Fd fd, const Address& peer);
  bool refuse(Fd& fd, const Address& peer, Refusal why);
  bool secure(TcpConnection& conn, int fd);  // ListenerOptions::tls: false when it cannot
  // ListenerOptions::proxy_protocol; `cap` shortens its header timeout (a refusal's).
  void expect_proxy_header(TcpConnection& conn, Duration cap = Duration::max());
  bool shed_one_connection();
  void pause_accepting();
  bool admit(StreamConnection& conn) noexcept override;
  std::unique_ptr<Disposable> release(StreamConnection& conn) noexcept override;

  EventLoop& loop_;
  Fd fd_;
  IoWatcher watcher_;
  Address local_;
  StreamHandlerFactory factory_;
  ListenerOptions options_;
  Fd reserve_fd_;  // spare descriptor given up to accept-and-close under EMFILE
  TimerId retry_timer_;
  bool wildcard_;  // bound to 0.0.0.0 or ::
  bool defers_accepts_;  // accepts wait for the first bytes (ListenerOptions::defer_accept)
  bool draining_ = false;
  bool* alive_flag_ = nullptr;  // set while on_readable() runs; cleared by the destructor
  std::vector<std::unique_ptr<TcpConnection>> connections_;
  ListenerStats stats_;
};

}  // namespace netloop
