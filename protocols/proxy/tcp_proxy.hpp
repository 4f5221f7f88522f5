// The TCP proxy: every accepted connection is joined to a new connection to an upstream
// (round robin, passing over upstreams that failed), and bytes are copied both ways with
// backpressure both ways, the half-close and the reset carried across.
//
//   auto stats = proxy::make_stats(route);
//   auto service = std::make_shared<proxy::ProxyService>(route.upstreams, options, stats);
//   TcpListener::listen(loop, route.listen, proxy::proxy_factory(service));
//
// One ProxyService per listener and loop: it owns that loop's Connector for the listener's
// upstream connections, and lives as long as the listener's factory or any of its
// clients (each holds it). Its stats outlive it (shared) for whoever reads them.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "netloop/connector.hpp"
#include "netloop/protocol.hpp"
#include "proxy/proxy_options.hpp"
#include "proxy/proxy_stats.hpp"
#include "proxy/upstream_pool.hpp"

namespace netloop::proxy {

class ProxyService {
 public:
  // `upstreams`: 1 to kMaxUpstreams. `stats` sized for them (make_stats).
  ProxyService(std::vector<UpstreamTarget> upstreams, ProxyOptions options,
               std::shared_ptr<ProxyStats> stats);
  ~ProxyService();
  ProxyService(const ProxyService&) = delete;
  ProxyService& operator=(const ProxyService&) = delete;

  const ProxyOptions& options() const noexcept { return options_; }
  ProxyStats& stats() noexcept { return *stats_; }
  const std::vector<UpstreamTarget>& upstreams() const noexcept { return upstreams_; }
  UpstreamPool& pool() noexcept { return pool_; }

  // Loop thread: connects upstream `index` for `handler` (which hears on_open or
  // on_close(connect_failed)); cancel() stops it.
  ConnectId connect(EventLoop& loop, size_t index, std::unique_ptr<StreamHandler> handler);
  void cancel(ConnectId id) noexcept;
  // The loop's clock (once a connect has been made: until then no one asks).
  TimePoint now() const noexcept { return connector_ ? connector_->loop().now() : Clock::now(); }

 private:
  std::vector<UpstreamTarget> upstreams_;
  ProxyOptions options_;
  ConnectOptions connect_options_;
  std::shared_ptr<ProxyStats> stats_;
  UpstreamPool pool_;
  // Made on the loop thread at the first connect. Declared last, so destroyed first: the
  // upstream ends it closes then still find the pool and the stats.
  std::optional<Connector> connector_;
};

// Counters for `route`'s listener: its name and one entry per upstream.
std::shared_ptr<ProxyStats> make_stats(const ProxyRoute& route);

// Client ends for a listener; each holds `service`.
StreamHandlerFactory proxy_factory(std::shared_ptr<ProxyService> service);

}  // namespace netloop::proxy
