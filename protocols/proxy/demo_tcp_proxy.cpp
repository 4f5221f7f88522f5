// netloop-demo's TCP proxy: every loop serves each --tcp-proxy listener with a service (and
// a Connector) of its own; the counters are kept per loop and summed by --metrics.
// --tls-proxy is the same proxy with TLS terminated on its listener (the --tls-cert
// certificates), and --upstream-tls originates TLS to the upstreams: stunnel's two modes,
// or both at once.
#include <memory>

#include "demo_options.hpp"
#include "demo_protocol.hpp"
#include "demo_tls.hpp"
#include "proxy/tcp_proxy.hpp"

namespace netloop::demo {
namespace {

std::string proxy_timeout(DemoOptions& o, std::string_view name, const std::string& v,
                          bool zero_ok, Duration& out) {
  o.proxy_options_given = true;
  return parse_timeout(name, v, zero_ok, out);
}

std::string upstream_list(const proxy::ProxyRoute& r) {
  std::string out;
  for (const auto& u : r.upstreams) out += (out.empty() ? "" : ",") + u.text;
  return out;
}

std::string parse_route_into(std::vector<proxy::ProxyRoute>& routes, const std::string& v,
                             Address& listen) {
  std::string why;
  auto route = proxy::parse_route(v, &why);
  if (!route) return why;
  listen = route->listen;
  routes.push_back(std::move(*route));
  return {};
}

// The client context for --upstream-tls, made once and shared by both proxy protocols
// and every loop; its counters go to --metrics as context "upstream".
std::string upstream_tls_context(DemoRun& run, std::shared_ptr<TlsClientContext>& out) {
  static std::weak_ptr<TlsClientContext> made;  // per process: one demo per process
  const proxy::ProxyOptions& po = run.options.proxy_options;
  if (!po.upstream_tls) return {};
  if ((out = made.lock())) return {};
  TlsClientOptions co;
  co.ca_file = po.upstream_ca;
  std::string why;
  auto ctx = TlsClientContext::create(co, &why);
  if (!ctx) {
    if (why.empty()) why = ctx.error().message();
    return (po.upstream_ca.empty() ? std::string("--upstream-tls: ")
                                   : "--upstream-ca " + po.upstream_ca + ": ") +
           one_line(why);
  }
  out = *ctx;
  made = out;
  run.metrics.tls.push_back({"upstream", [ctx = out] { return ctx->stats(); }});
  return {};
}

// Registers the routes of `protocol` (the listeners' addresses are in them).
std::string setup_proxy(DemoRun& run, const DemoProtocol& protocol,
                        const std::vector<proxy::ProxyRoute>& routes) {
  proxy::ProxyOptions po = run.options.proxy_options;
  po.upstream_connection = run.options.connection;
  if (std::string why = upstream_tls_context(run, po.upstream_tls_context); !why.empty())
    return why;
  std::shared_ptr<TlsServerContext> tls;
  if (protocol.tls)
    if (std::string why = make_tls_server(run, protocol, tls); !why.empty()) return why;
  // Per route, counters per loop (one writer each), summed when read.
  auto all = std::make_shared<std::vector<std::vector<std::shared_ptr<proxy::ProxyStats>>>>();
  for (const auto& route : routes) {
    std::vector<std::shared_ptr<proxy::ProxyStats>> stats;
    for (size_t i = 0; i < run.options.threads; ++i) {
      stats.push_back(proxy::make_stats(route));
      run.metrics.proxy.push_back(stats.back().get());
    }
    all->push_back(stats);
    protocol.add_stream(
        run, route.listen, [upstreams = route.upstreams, po, stats, tls](EventLoop&, size_t i) {
          auto service = std::make_shared<proxy::ProxyService>(upstreams, po, stats[i]);
          return StreamService{.factory = proxy::proxy_factory(std::move(service)), .tls = tls};
        });
  }
  // The counters are named after the address bound (port 0: the one the kernel
  // picked), before any loop runs.
  run.after_start.push_back([&run, all, name = protocol.name] {
    size_t route = 0;
    for (const auto& b : run.server.bound()) {
      if (b.name != name || route >= all->size()) continue;
      for (auto& st : (*all)[route]) st->listener = b.address.to_string();
      ++route;
    }
  });
  return {};
}

std::string upstream_detail(const DemoOptions& o, const std::vector<proxy::ProxyRoute>& routes,
                            size_t i) {
  if (i >= routes.size()) return {};
  std::string out = ", upstreams " + upstream_list(routes[i]);
  if (o.proxy_options.upstream_tls) out += " over TLS";
  return out;
}

}  // namespace

const DemoProtocol& tcp_proxy_protocol() {
  static const DemoProtocol p{
      .name = "tcp-proxy",
      .flag = "--tcp-proxy",
      .listen_help = "TCP proxy, round robin:\n"
                     "each client is joined to a new connection to the next UPSTREAM\n"
                     "(HOST:PORT, a name or an address); one that fails is passed over\n"
                     "for a while and the client tried on the next, e.g.\n"
                     "127.0.0.1:6380=127.0.0.1:6379,[::1]:6379",
      .listen_value = "LISTEN=UPSTREAM[,UPSTREAM...]",
      .parse_listener = [](DemoOptions& o, const std::string& v, Address& listen) {
        return parse_route_into(o.proxy_routes, v, listen);
      },
      .options_title = "TCP proxy (--tcp-proxy and --tls-proxy)",
      .options =
          {
              {"--proxy-connect-timeout", "SECS", "a number of seconds",
               "an upstream connect taking longer fails, and the client is tried\n"
               "on the next upstream (default 5)",
               [](DemoOptions& o, const std::string& v) {
                 return proxy_timeout(o, "--proxy-connect-timeout", v, false,
                                      o.proxy_options.connect_timeout);
               }},
              {"--proxy-idle-timeout", "SECS", "a number of seconds",
               "a pair with no byte moving either way this long is closed\n"
               "(default 300; 0: never)",
               [](DemoOptions& o, const std::string& v) {
                 return proxy_timeout(o, "--proxy-idle-timeout", v, true,
                                      o.proxy_options.idle_timeout);
               }},
              {"--proxy-retry-after", "SECS", "a number of seconds",
               "an upstream that failed to connect is passed over this long\n"
               "(default 5)",
               [](DemoOptions& o, const std::string& v) {
                 return proxy_timeout(o, "--proxy-retry-after", v, false,
                                      o.proxy_options.retry_after);
               }},
              {"--upstream-tls", "", "",
               "speak TLS to the upstreams, verifying their certificate and\n"
               "name; a failed handshake counts as a failed connect",
               [](DemoOptions& o, const std::string&) -> std::string {
                 o.proxy_options_given = true;
                 o.proxy_options.upstream_tls = true;
                 return {};
               }},
              {"--upstream-ca", "FILE", "a CA file",
               "trusted roots (PEM) for --upstream-tls (default: the system's\n"
               "trust store)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (v.empty()) return "--upstream-ca needs a CA file";
                 o.proxy_options.upstream_ca = v;
                 return {};
               }},
              {"--upstream-sni", "NAME", "a host name",
               "name sent as SNI and checked against the upstreams' certificate\n"
               "(default: each upstream's host as given; an address is checked\n"
               "against the certificate's IP addresses, without SNI)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (v.empty()) return "--upstream-sni needs a host name";
                 o.proxy_options.upstream_sni = v;
                 return {};
               }},
          },
      .check = [](const DemoOptions& o, bool listening) -> std::string {
        const proxy::ProxyOptions& po = o.proxy_options;
        if (o.proxy_options_given && !listening && o.tls_proxy_routes.empty())
          return "the --proxy-* and --upstream-* options apply to --tcp-proxy and --tls-proxy "
                 "listeners: add --tcp-proxy LISTEN=UPSTREAM";
        if (!po.upstream_tls && !po.upstream_ca.empty())
          return "--upstream-ca applies to TLS upstreams: add --upstream-tls";
        if (!po.upstream_tls && !po.upstream_sni.empty())
          return "--upstream-sni applies to TLS upstreams: add --upstream-tls";
        return {};
      },
      .setup = [](DemoRun& run, const std::vector<Address>&) {
        return setup_proxy(run, tcp_proxy_protocol(), run.options.proxy_routes);
      },
      .listener_detail = [](const DemoRun& run, size_t i) {
        return upstream_detail(run.options, run.options.proxy_routes, i);
      },
  };
  return p;
}

const DemoProtocol& tls_proxy_protocol() {
  static const DemoProtocol p{
      .name = "tls-proxy",
      .flag = "--tls-proxy",
      .listen_help = "the TCP proxy with TLS terminated on LISTEN (the --tls-cert\n"
                     "certificates): plain bytes go on to the upstreams (or TLS with\n"
                     "--upstream-tls), e.g. 127.0.0.1:8443=127.0.0.1:8080",
      .listen_value = "LISTEN=UPSTREAM[,UPSTREAM...]",
      .parse_listener = [](DemoOptions& o, const std::string& v, Address& listen) {
        return parse_route_into(o.tls_proxy_routes, v, listen);
      },
      .tls = true,
      .setup = [](DemoRun& run, const std::vector<Address>&) {
        return setup_proxy(run, tls_proxy_protocol(), run.options.tls_proxy_routes);
      },
      .detail = [](const DemoRun& run) { return tls_banner_detail(run, tls_proxy_protocol()); },
      .listener_detail = [](const DemoRun& run, size_t i) {
        return upstream_detail(run.options, run.options.tls_proxy_routes, i);
      },
  };
  return p;
}

}  // namespace netloop::demo
