// Connector: outbound TCP connections, driving the same StreamHandler and Connection as
// accepted ones.
//
//   netloop::Connector connector(loop);
//   connector.connect("localhost", 6379, std::make_unique<MyClient>());
//
// The handler hears on_open once connected. A connection that could not be made is
// reported through on_close alone (no on_open before it), with CloseReason::connect_failed
// and CloseInfo::error saying what failed:
//   std::errc::connection_refused       nothing listens there
//   std::errc::host_unreachable,
//   std::errc::network_unreachable      no route
//   std::errc::timed_out                ConnectOptions::timeout passed (resolving included)
//   ResolveErrc::name_not_found & co.   the name did not resolve (resolver.hpp)
// and CloseInfo::text naming the target and the addresses tried. The Connection given
// to that on_close is a stand-in: its peer_address() is the last address tried, and
// everything else does nothing.
//
// A name with several addresses is tried the Happy Eyeballs way (RFC 8305): the addresses
// alternate between families, starting with the resolver's first; the next attempt starts
// when the previous one fails or after ConnectOptions::attempt_delay, whichever is first;
// the first to connect wins and every other attempt is closed at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/counter.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/protocol.hpp"
#include "netloop/resolver.hpp"
#include "netloop/stream_connection.hpp"
#include "netloop/tls.hpp"

namespace netloop {

class TcpConnection;

struct ConnectOptions {
  // From the call to the connection (resolving and every attempt included).
  Duration timeout = seconds(10);
  // Happy Eyeballs: how long an attempt has alone before the next address is tried too.
  Duration attempt_delay = milliseconds(250);
  // Bind to this before connecting (port 0: any). An attempt whose family differs from
  // the local address's is skipped.
  std::optional<Address> local{};
  ConnectionOptions connection{};
  // TLS: the handshake runs after the TCP connect and before on_open; a failed one (the
  // certificate did not verify, the name did not match) is a connect_failed close with
  // a TlsErrc. The name sent as SNI and checked against the certificate is
  // `tls_server_name`, or else the host given to connect() (an address is checked
  // against the certificate's IP addresses, and no SNI is sent for it).
  std::shared_ptr<TlsClientContext> tls{};
  std::string tls_server_name{};
};

// keep_connected(): how long to wait before connecting again after a failure or a close.
// The wait doubles from `initial` up to `max`, each one shortened by a random fraction of
// up to `jitter` (so many clients cut off together do not all come back together); it
// goes back to `initial` after a connection that stayed up for `stable_after`.
struct ReconnectOptions {
  Duration initial = milliseconds(100);
  Duration max = seconds(30);
  double multiplier = 2.0;
  double jitter = 0.5;  // 0: exact waits; 1: anywhere between 0 and the wait
  Duration stable_after = seconds(10);
};

// The waits of one reconnecting client: pure, so it can be tested alone.
class Backoff {
 public:
  explicit Backoff(const ReconnectOptions& options, uint64_t seed = std::random_device{}());
  // The wait before the next attempt, and counts that attempt.
  Duration next();
  void reset() noexcept { failures_ = 0; }
  unsigned failures() const noexcept { return failures_; }
  const ReconnectOptions& options() const noexcept { return options_; }

 private:
  ReconnectOptions options_;
  unsigned failures_ = 0;
  std::mt19937_64 rng_;
};

struct ConnectorStats {
  Counter attempts;   // sockets that began a connect (one name can take several)
  Counter connected;  // connections made (on_open)
  Counter failed;     // connects reported as connect_failed
  Counter cancelled;  // connects cancelled before they finished
  Counter reconnects; // keep_connected(): connects started again after a failure or close
};

struct ConnectorOptions {
  ResolverOptions resolver{};
  uint64_t seed = 0;  // for the reconnect jitter; 0: random
};

using ConnectId = uint64_t;  // 0 is never an id

class Connector final : ConnectionOwner {
 public:
  explicit Connector(EventLoop& loop, ConnectorOptions options = {});
  // Cancels every connect in progress (no callback) and closes every connection it made
  // (on_close with CloseReason::shutdown). It may be destroyed from any of its handlers'
  // calls; a connect() or keep_connected() asked for while it is being destroyed (from
  // such an on_close) is refused: it returns 0 and drops the handler without a call.
  ~Connector();
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // Loop thread. Connects to `host` (a name, or a numeric IPv4/IPv6 address) and `port`.
  // The handler's calls run on this loop, never inside this call. Handlers may call back
  // into the connector from any of their calls (connect again, cancel, destroy it).
  ConnectId connect(std::string_view host, uint16_t port, std::unique_ptr<StreamHandler> handler,
                    const ConnectOptions& options = {});
  ConnectId connect(const Address& address, std::unique_ptr<StreamHandler> handler,
                    const ConnectOptions& options = {});
  // Keeps a connection to host:port up until cancel(): each attempt gets a new handler
  // from `factory` (which hears on_open, or on_close with connect_failed); after a
  // failure or a close, the next attempt waits as `reconnect` says.
  ConnectId keep_connected(std::string_view host, uint16_t port, StreamHandlerFactory factory,
                           const ReconnectOptions& reconnect = {},
                           const ConnectOptions& options = {});
  // A connect still in progress (resolving, connecting or waiting to reconnect) stops:
  // no callback runs after this and its handler is destroyed without one. A connection
  // already made is not touched (close it through its Connection), except for
  // keep_connected(), whose current connection is closed (CloseReason::shutdown).
  // Returns whether there was anything to cancel.
  bool cancel(ConnectId id) noexcept;

  size_t pending_count() const noexcept { return pending_.size(); }        // connecting
  size_t connection_count() const noexcept { return connections_.size(); }  // made, still open
  const ConnectorStats& stats() const noexcept { return stats_; }
  EventLoop& loop() const noexcept { return loop_; }
  Resolver& resolver() noexcept { return resolver_; }

 private:
  struct Pending;
  struct Attempt;
  struct Keeper;
  friend struct Pending;

  ConnectId start(ConnectId id, std::string_view host, uint16_t port, const Address* address,
                  std::unique_ptr<StreamHandler> handler, const ConnectOptions& options,
                  ConnectId keeper);
  void resolved(Pending& p, Result<Addresses> result);
  void start_next_attempt(Pending& p);
  void attempt_ready(Pending& p, Attempt& a);
  void attempt_finished(Pending& p, Attempt& a, int err);
  void connected(Pending& p, Attempt& a);
  void fail(Pending& p, std::error_code ec);
  void report_failure(std::unique_ptr<StreamHandler> handler, ConnectId keeper,
                      const Address& where, std::error_code ec, std::string text);
  void finish(Pending& p) noexcept;  // drops it from pending_
  Pending* find(ConnectId id) noexcept;
  Keeper* find_keeper(ConnectId id) noexcept;
  void schedule_reconnect(Keeper& k);
  void arm_keeper(Keeper& k, Duration wait);
  void keeper_connection_closed(Keeper& k);
  std::unique_ptr<Disposable> release(StreamConnection& conn) noexcept override;
  void opened(StreamConnection& conn) noexcept override;
  std::unique_ptr<Disposable> remove(StreamConnection& conn) noexcept;  // from connections_

  EventLoop& loop_;
  Resolver resolver_;
  std::vector<std::unique_ptr<Pending>> pending_;
  std::vector<std::unique_ptr<TcpConnection>> connections_;
  std::vector<std::unique_ptr<Keeper>> keepers_;
  ConnectId next_id_ = 1;
  uint64_t seed_;
  ConnectorStats stats_;
  std::shared_ptr<bool> alive_;  // cleared by the destructor: callbacks that outlive it see it
};

}  // namespace netloop
