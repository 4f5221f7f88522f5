// netloop-demo's observability: the Prometheus text for --metrics and the one-line
// summary for SIGUSR1, from the server's totals and each loop's HTTP and proxy counters.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "http/http_responder.hpp"
#include "netloop/server.hpp"
#include "netloop/tls.hpp"
#include "proxy/proxy_stats.hpp"

namespace netloop::demo {

// One TLS context's counters: "https", "tls-echo", "upstream" (the proxy's client side).
struct TlsSource {
  std::string context;
  std::function<TlsStats()> stats;
};

struct MetricsSources {
  const Server* server = nullptr;
  std::vector<const http::HttpStats*> http;  // one per loop serving HTTP
  std::vector<const proxy::ProxyStats*> proxy;  // one per --tcp-proxy listener and loop
  std::vector<TlsSource> tls;                   // one per TLS context
};

// The Prometheus text exposition format (0.0.4); every value read without locks.
std::string render_prometheus(const MetricsSources& sources);
// "connections open=3 accepted=120 refused=0; bytes in=... out=...; http requests=..."
std::string one_line_summary(const MetricsSources& sources);

}  // namespace netloop::demo
