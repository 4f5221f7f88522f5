// netloop-demo's Prometheus endpoint: an admin listener on the first loop, outside
// --max-connections (a scrape must get through when the server is full) under a small
// cap of its own.
#include "demo_options.hpp"
#include "demo_protocol.hpp"
#include "http/metrics_endpoint.hpp"

namespace netloop::demo {

const DemoProtocol& metrics_protocol() {
  static const DemoProtocol p{
      .name = "metrics",
      .flag = "--metrics",
      .listen_help = "serve counters for Prometheus at http://HOST:PORT/metrics",
      .shared = true,
      .is_service = false,
      .options_title = "Metrics",
      .options =
          {
              {"--metrics-max-connections", "N", "a number",
               "connections to the metrics endpoint at once; past it a\n"
               "503 (default 8; outside --max-connections)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (!parse_count(v, 1, 1000, o.metrics_max_connections))
                   return "--metrics-max-connections " + v + ": expected a whole number from 1 to 1000";
                 return {};
               }},
          },
      .setup = [](DemoRun& run, const std::vector<Address>& addresses) -> std::string {
        for (const auto& a : addresses)
          metrics_protocol().add_stream(run, a, [&run](EventLoop&, size_t) {
            http::MetricsOptions mo;
            mo.http = run.options.http_options;
            mo.max_connections = run.options.metrics_max_connections;
            MetricsSources& sources = run.metrics;
            return StreamService{
                .factory = http::metrics_factory([&sources] { return render_prometheus(sources); }, mo),
                .unlimited = true};
          });
        return {};
      },
  };
  return p;
}

}  // namespace netloop::demo
