// netloop-demo's TCP proxy: every loop serves each --tcp-proxy listener with a service (and
// a Connector) of its own; the counters are kept per loop and summed by --metrics.
#include <memory>

#include "demo_options.hpp"
#include "demo_protocol.hpp"
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

}  // namespace

const DemoProtocol& tcp_proxy_protocol() {
  static const DemoProtocol p{
      .name = "tcp-proxy",
      .flag = "--tcp-proxy",
      .listen_help = "TCP proxy: each client is joined to a new connection to the next\n"
                     "UPSTREAM (HOST:PORT, a name or an address; round robin, one that\n"
                     "fails is passed over for a while and the client tried on the\n"
                     "next), e.g. 127.0.0.1:6380=127.0.0.1:6379,[::1]:6379",
      .listen_value = "LISTEN=UPSTREAM[,UPSTREAM...]",
      .parse_listener = [](DemoOptions& o, const std::string& v, Address& listen) -> std::string {
        std::string why;
        auto route = proxy::parse_route(v, &why);
        if (!route) return why;
        listen = route->listen;
        o.proxy_routes.push_back(std::move(*route));
        return {};
      },
      .options_title = "TCP proxy",
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
          },
      .check = [](const DemoOptions& o, bool listening) -> std::string {
        if (o.proxy_options_given && !listening)
          return "the --proxy-* options apply to --tcp-proxy listeners: add --tcp-proxy "
                 "LISTEN=UPSTREAM";
        return {};
      },
      .setup = [](DemoRun& run, const std::vector<Address>&) -> std::string {
        proxy::ProxyOptions po = run.options.proxy_options;
        po.upstream_connection = run.options.connection;
        for (const auto& route : run.options.proxy_routes) {
          // Counters per loop (one writer each), summed when read.
          std::vector<std::shared_ptr<proxy::ProxyStats>> stats;
          for (size_t i = 0; i < run.options.threads; ++i) {
            stats.push_back(proxy::make_stats(route));
            run.metrics.proxy.push_back(stats.back().get());
          }
          tcp_proxy_protocol().add_stream(
              run, route.listen, [upstreams = route.upstreams, po, stats](EventLoop&, size_t i) {
                auto service = std::make_shared<proxy::ProxyService>(upstreams, po, stats[i]);
                return StreamService{.factory = proxy::proxy_factory(std::move(service))};
              });
        }
        return {};
      },
      .detail = [](const DemoRun& run) -> std::string {
        const auto& routes = run.options.proxy_routes;
        if (routes.size() == 1) return ", upstreams " + upstream_list(routes[0]);
        std::string out = ", routes";
        for (const auto& r : routes) {
          out += ' ';
          out += r.listen.to_string();
          out += '=';
          out += upstream_list(r);
        }
        return out;
      },
  };
  return p;
}

}  // namespace netloop::demo
