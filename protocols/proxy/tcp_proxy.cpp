// ProxyService: one listener's upstreams, pool and Connector on one loop.
#include "proxy/tcp_proxy.hpp"

#include <cassert>

#include "proxy/proxy_pair.hpp"

namespace netloop::proxy {

ProxyService::ProxyService(std::vector<UpstreamTarget> upstreams, ProxyOptions options,
                           std::shared_ptr<ProxyStats> stats)
    : upstreams_(std::move(upstreams)),
      options_(options),
      stats_(std::move(stats)),
      pool_(upstreams_.size(), options_.retry_after) {
  assert(stats_ && stats_->per_upstream.size() == upstreams_.size());
  connect_options_.timeout = options_.connect_timeout;
  connect_options_.connection = options_.upstream_connection;
  connect_options_.tls = options_.upstream_tls_context;
  connect_options_.tls_server_name = options_.upstream_sni;
}

ProxyService::~ProxyService() = default;

ConnectId ProxyService::connect(EventLoop& loop, size_t index,
                                std::unique_ptr<StreamHandler> handler) {
  if (!connector_) connector_.emplace(loop);
  const UpstreamTarget& t = upstreams_[index];
  if (t.address) return connector_->connect(*t.address, std::move(handler), connect_options_);
  return connector_->connect(t.host, t.port, std::move(handler), connect_options_);
}

void ProxyService::cancel(ConnectId id) noexcept {
  if (connector_) connector_->cancel(id);
}

std::shared_ptr<ProxyStats> make_stats(const ProxyRoute& route) {
  auto s = std::make_shared<ProxyStats>();
  s->listener = route.listen.to_string();
  for (const auto& u : route.upstreams) s->upstreams.push_back(u.text);
  s->per_upstream.resize(route.upstreams.size());
  return s;
}

StreamHandlerFactory proxy_factory(std::shared_ptr<ProxyService> service) {
  return [service = std::move(service)] { return std::make_unique<ClientEnd>(service); };
}

}  // namespace netloop::proxy
