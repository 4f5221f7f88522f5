// Server: N event loops on N threads, shared-nothing, each with its own listeners for
// every protocol (SO_REUSEPORT: the kernel spreads connections and datagrams across
// them), a shared connection budget, graceful drain, signals and aggregated counters.
//
//   Server server({.threads = 2});
//   server.add_stream("echo", addr, [](EventLoop&, size_t) {
//     return StreamService{.factory = echo::tcp_echo_factory()};
//   });
//   if (auto ec = server.start(&why)) ...;
//   server.handle_signals();
//   server.run();  // until SIGTERM has drained it
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/counter.hpp"
#include "netloop/datagram.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/protocol.hpp"
#include "netloop/tcp_listener.hpp"
#include "netloop/udp_socket.hpp"

namespace netloop {

struct ServerOptions {
  size_t threads = 1;                    // event loops, one thread each
  std::string poller{};                  // backend name; "" = the default
  Duration drain_timeout = seconds(10);  // a drain closes what is left after this
  size_t max_connections = 0;            // across all loops and listeners; 0 = no limit
  // Connections one client (an IPv4 address, an IPv6 network of client_ipv6_prefix bits)
  // may hold at once across all loops; 0 = no limit.
  size_t max_connections_per_client = 0;
  int client_ipv6_prefix = 64;
  // SO_REUSEPORT listeners on every loop; false (or where the platform lacks it): one
  // acceptor on loop 0 hands connections to the loops in turn.
  bool reuse_port = true;
  ListenerOptions listener{};  // backlog, connection options (reuse_port and limit are set here)
  UdpOptions udp{};
  // Keep a copy of every listening socket, so that listening_sockets() can hand them to
  // a new instance (netloop/handover.hpp). Every socket then has SO_REUSEPORT, one loop
  // or many, so a successor with more loops can add its own on the same port. The copies
  // close when the server drains or stops.
  bool handover_source = false;
};

// A listening socket (TCP listener or UDP socket) of one registration on one loop, as
// passed from a running Server to its successor.
struct ListeningSocket {
  std::string name;       // the registration's name
  Address address;        // as bound
  size_t loop = 0;        // the loop that served it
  bool datagram = false;  // a UDP socket; else a TCP listener
  Fd fd;
};

// What a stream protocol needs on one loop; made once per loop, so per-loop state (a
// cache, a chat room) is shared by that loop's connections only.
// Named fields: StreamService{.factory = f, .unlimited = true}.
struct StreamService {
  StreamHandlerFactory factory{};
  StreamHandlerFactory refusal_factory{};  // optional: answers connections past the limit
  bool unlimited = false;  // outside max_connections (an admin endpoint: metrics)
  std::shared_ptr<TlsServerContext> tls{};  // TLS on this listener (ListenerOptions::tls)
  // PROXY protocol headers expected on this listener (ListenerOptions::proxy_protocol);
  // null: ServerOptions::listener's.
  std::shared_ptr<const ProxyProtocolOptions> proxy_protocol{};
};

// Which loops serve a registration.
enum class Loops : uint8_t {
  every,  // each loop its own listener (SO_REUSEPORT): the kernel spreads the load
  first,  // loop 0 only: for a protocol whose connections share state (a chat room)
};

// Totals across loops, read without locks while the loops run.
struct ServerTotals {
  uint64_t connections_open = 0;
  uint64_t accepted = 0;
  uint64_t refused = 0;          // past max_connections
  uint64_t refused_per_client = 0;  // past max_connections_per_client
  uint64_t accept_errors = 0;    // accept failures that paused accepting
  uint64_t dropped_no_fds = 0;   // accepted and closed: out of descriptors
  uint64_t tcp_bytes_in = 0;
  uint64_t tcp_bytes_out = 0;
  uint64_t closed_local = 0, closed_peer = 0, closed_aborted = 0, closed_reset = 0,
           closed_error = 0, closed_shutdown = 0, closed_protocol = 0, closed_idle = 0;
  uint64_t write_timeouts = 0;
  uint64_t datagrams_in = 0;
  uint64_t datagrams_out = 0;
  uint64_t datagrams_dropped = 0;  // truncated, send buffer full, too large, send errors
  uint64_t udp_peer_errors = 0;
  // PROXY protocol headers (ProxyProtocolStats): accepted, and rejected by reason.
  struct ProxyProtocol {
    uint64_t accepted = 0, untrusted = 0, invalid = 0, timeouts = 0, aborted = 0;
  } proxy_protocol;

  ServerTotals& operator+=(const ServerTotals& o) noexcept;
};

class Server {
 public:
  using StreamSetup = std::function<StreamService(EventLoop& loop, size_t loop_index)>;
  using DatagramSetup =
      std::function<std::unique_ptr<DatagramHandler>(EventLoop& loop, size_t loop_index)>;

  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registration, before start().
  void add_stream(std::string name, Address address, StreamSetup setup, Loops loops = Loops::every);
  void add_datagram(std::string name, Address address, DatagramSetup setup,
                    Loops loops = Loops::every);

  // Creates the loops and binds everything. Port 0 is picked by loop 0's socket and the
  // other loops bind that same port. The error (and `why`) names the listener.
  Result<void> start(std::string* why = nullptr);
  // The same, serving `inherited` sockets (from a handover) instead of binding new ones.
  // A registration takes those of its kind and name whose address is its own (its port 0
  // matches any port on its host), in their loop order: socket k goes to loop k % n of
  // its n loops, so one with fewer loops than before still accepts on every socket (what
  // is queued on them is not lost), and one with more binds SO_REUSEPORT sockets of its
  // own on the same address for the rest. Inherited sockets no registration takes are
  // closed at once: connections still queued on them are reset once the old instance
  // has closed its copies too (a listener removed in the new configuration ends).
  Result<void> start(std::vector<ListeningSocket> inherited, std::string* why = nullptr);
  // Runs the loops, loop 0 on the calling thread, until stop() or a finished drain.
  void run();
  // Any thread. Stops now: open connections close with CloseReason::shutdown.
  void stop();
  // Any thread. Stops accepting at once, tells every connection the server is draining
  // (StreamHandler::on_server_draining), and stops when none is left or after
  // drain_timeout (what is left then is closed).
  void drain();
  bool draining() const noexcept { return draining_.load(std::memory_order_relaxed); }

  // On loop 0: SIGTERM and SIGINT start a drain, a second one stops at once; SIGUSR1
  // calls `on_usr1` (a one-line summary, say). Call after start().
  Result<void> handle_signals(std::function<void()> on_usr1 = {});

  struct Bound {
    std::string name;
    Address address;  // as bound (the port the kernel chose for port 0)
    bool datagram;
  };
  const std::vector<Bound>& bound() const noexcept { return bound_; }
  // Any thread, after start(): a duplicate of every listening socket, for a successor
  // (ServerOptions::handover_source; else ENOTSUP). ECANCELED once draining or stopping:
  // the sockets are closing then.
  Result<std::vector<ListeningSocket>> listening_sockets() const;
  // Any thread. After a handover that passed the listening sockets but did not complete
  // (the new instance stepped back, died, or never confirmed): sets this server's own
  // backlog and accept deferral on its TCP listening sockets again, since the new
  // instance set its own when it took them (HandoverOptions::not_taken).
  void restore_socket_options();
  size_t loop_count() const noexcept { return loops_.size(); }
  EventLoop& loop(size_t i) noexcept;
  // Any thread.
  ServerTotals totals() const;
  std::vector<uint64_t> accepted_per_loop() const;
  // One datagram registration's counters, summed over its loops (index: registration order).
  UdpStats datagram_stats(size_t registration) const;

 private:
  struct Loop;
  struct StreamReg {
    std::string name;
    Address address;
    StreamSetup setup;
    bool every_loop;
  };
  struct DatagramReg {
    std::string name;
    Address address;
    DatagramSetup setup;
    bool every_loop;
  };

  std::error_code bind_stream(const StreamReg& reg, std::string* why);
  std::error_code hand_off_to_loops(size_t n, const std::vector<StreamService>& services,
                                    const ListenerOptions& lo, const Address& local,
                                    std::vector<Fd> acceptors, const StreamReg& reg,
                                    std::string* why);
  std::vector<Fd> take_inherited(const std::string& name, bool datagram, const Address& at);
  // handover_source: keeps a duplicate of a listening socket to pass on; `listener` (null
  // for a UDP socket) says how it was set up, to set again after a failed handover.
  std::error_code keep_copy(const std::string& name, size_t loop, int fd,
                            const ListenerOptions* listener);
  void drop_copies();
  std::error_code bind_datagram(const DatagramReg& reg, std::string* why);
  void begin_drain(Loop& l);
  void finish(Loop& l);
  void retire_sockets(Loop& l);

  ServerOptions options_;
  std::shared_ptr<ConnectionLimit> limit_;
  std::shared_ptr<ClientConnectionLimit> client_limit_;  // one table for every loop
  std::vector<StreamReg> streams_;
  std::vector<DatagramReg> datagrams_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<Bound> bound_;
  std::vector<ListeningSocket> inherited_;  // during start() only
  mutable std::mutex copies_mutex_;
  // A kept listening socket and, for a TCP one, its backlog and accept deferral.
  struct KeptCopy {
    ListeningSocket socket;
    ListenerOptions settings;
  };
  std::vector<KeptCopy> copies_;  // handover_source: until draining or stopping
  bool copies_closed_ = false;
  mutable std::mutex retired_udp_mutex_;
  std::vector<UdpStats> retired_udp_;  // by datagram registration: sockets already closed
  std::atomic<bool> draining_{false};
  std::atomic<bool> started_{false};
  std::atomic<size_t> finished_loops_{0};
  int signals_seen_ = 0;  // loop 0 only
};

}  // namespace netloop
