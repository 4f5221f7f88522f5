// TcpListener: a listening TCP socket that accepts in batches and owns the connections
// it accepted, each driving a handler made by the factory.
#pragma once

#include <memory>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/fd.hpp"
#include "netloop/protocol.hpp"
#include "netloop/tcp_connection.hpp"

namespace netloop {

struct ListenerOptions {
  int backlog = 4096;       // the kernel caps it at net.core.somaxconn
  bool reuse_port = false;  // SO_REUSEPORT: one listener per loop on the same port
  size_t accept_batch = 64; // accepts per readiness event, so one listener cannot starve the rest
  ConnectionOptions connection;
};

struct ListenerStats {
  uint64_t accepted = 0;
  uint64_t accept_errors = 0;   // failures that paused accepting (EMFILE with no reserve, ENOBUFS...)
  uint64_t dropped_no_fds = 0;  // accepted and closed at once because of EMFILE/ENFILE
  uint64_t unwatchable = 0;     // accepted, but the poller refused them (select: FD_SETSIZE)
};

class TcpListener final : ConnectionOwner {
 public:
  // Binds and listens; errors name the errno (EADDRINUSE, EACCES, EADDRNOTAVAIL...).
  static Result<std::unique_ptr<TcpListener>> listen(EventLoop& loop, const Address& address,
                                                     StreamHandlerFactory factory,
                                                     const ListenerOptions& options = {});
  ~TcpListener();  // closes the listening socket and every connection (reason shutdown)

  const Address& local_address() const noexcept { return local_; }
  size_t connection_count() const noexcept { return connections_.size(); }
  const ListenerStats& stats() const noexcept { return stats_; }
  // Closes the listening socket; live connections go on.
  void stop_accepting() noexcept;

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
  bool shed_one_connection();
  void pause_accepting();
  std::unique_ptr<TcpConnection> release(TcpConnection& conn) noexcept override;

  EventLoop& loop_;
  Fd fd_;
  IoWatcher watcher_;
  Address local_;
  StreamHandlerFactory factory_;
  ListenerOptions options_;
  Fd reserve_fd_;  // spare descriptor given up to accept-and-close under EMFILE
  TimerId retry_timer_;
  bool wildcard_;  // bound to 0.0.0.0 or ::
  bool* alive_flag_ = nullptr;  // set while on_readable() runs; cleared by the destructor
  std::vector<std::unique_ptr<TcpConnection>> connections_;
  ListenerStats stats_;
};

}  // namespace netloop
