// netloop-demo: serves every protocol in the list (demo_protocols.cpp), on one event loop
// or several. Nothing here names a protocol: each describes itself (demo_protocol.hpp).
#include <csignal>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "demo_handover.hpp"
#include "demo_options.hpp"
#include "demo_protocol.hpp"
#include "demo_tls.hpp"
#include "netloop/log.hpp"
#include "netloop/server.hpp"
#include "netloop/tls.hpp"
#include "netloop/udp_socket.hpp"
#include "server_metrics.hpp"

using namespace netloop;

namespace {

constexpr int kExitUsage = 2;

int list_pollers() {
  std::string def = default_backend();
  for (const auto& b : available_backends()) {
    if (b.available)
      std::printf("%-9s available%s\n", b.name.c_str(), b.name == def ? " (default)" : "");
    else
      std::printf("%-9s unavailable: %s\n", b.name.c_str(), b.reason.c_str());
  }
  return 0;
}

// One line per listener: what listens where, on which backend, on how many loops.
void print_banner(const Server& server, const demo::DemoRun& run, const std::string& backend) {
  std::map<std::string, std::string, std::less<>> details;
  for (const demo::DemoProtocol* p : demo::demo_protocols())
    if (p->detail) details[std::string(p->name)] = p->detail(run);
  std::map<std::string, size_t, std::less<>> seen;  // listeners of each protocol so far
  for (const auto& b : server.bound()) {
    const demo::DemoProtocol* p = demo::find_protocol(b.name);
    std::string detail = "poller " + backend;
    if (run.options.threads > 1)
      detail += ", " + std::to_string(p && p->shared ? 1 : run.options.threads) + " loop(s)";
    if (auto it = details.find(b.name); it != details.end()) detail += it->second;
    size_t index = seen[b.name]++;
    if (p && p->listener_detail) detail += p->listener_detail(run, index);
    std::printf("netloop-demo: %s listening on %s (%s)\n", b.name.c_str(),
                b.address.to_string().c_str(), detail.c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = demo::parse_demo_options(args);
  if (!parsed.options) {
    std::fprintf(stderr, "netloop-demo: %s\n", parsed.error.c_str());
    return kExitUsage;
  }
  const auto& opt = *parsed.options;
  if (opt.help) {
    std::fputs(demo::demo_usage().c_str(), stdout);
    return 0;
  }
  if (opt.version) {
    std::printf("netloop-demo %s\nTLS: %s\n", NETLOOP_VERSION,
                std::string(tls_library_version()).c_str());
    return 0;
  }
  if (opt.list_pollers) return list_pollers();
  set_log_level(opt.log_level);
  std::signal(SIGPIPE, SIG_IGN);  // sends use MSG_NOSIGNAL; this covers anything else

  ServerOptions so;
  so.threads = opt.threads;
  so.poller = opt.poller;
  so.drain_timeout = opt.drain_timeout;
  so.max_connections = opt.max_connections;
  so.max_connections_per_client = opt.max_connections_per_ip;
  so.client_ipv6_prefix = opt.client_ipv6_prefix;
  so.listener.connection = opt.connection;
  so.listener.defer_accept = opt.defer_accept;
  so.udp = opt.udp;
  so.handover_source = !opt.handover_path.empty();
  Server server(so);
  demo::DemoHandover handover(opt.handover_path);  // after the server: it uses loop 0

  demo::MetricsSources sources;
  sources.server = &server;
  demo::DemoRun run{server, opt, sources, {}};
  for (const demo::DemoProtocol* p : demo::demo_protocols()) {
    std::vector<Address> addresses = opt.addresses(p->name);
    if (addresses.empty()) continue;
    if (std::string why = p->setup(run, addresses); !why.empty()) {
      std::fprintf(stderr, "netloop-demo: %s\n", why.c_str());
      return kExitUsage;
    }
  }

  std::vector<ListeningSocket> inherited;
  if (std::string why = handover.receive(inherited); !why.empty()) {
    std::fprintf(stderr, "netloop-demo: %s\n", why.c_str());
    return kExitUsage;
  }
  std::string why;
  if (auto ec = server.start(std::move(inherited), &why).error()) {
    std::fprintf(stderr, "netloop-demo: %s\n", why.c_str());
    return kExitUsage;
  }
  for (auto& after : run.after_start) after();
  // Listening at the --handover path (or taking it over) before the banner says "ready".
  if (std::string why = handover.serve(server); !why.empty()) {
    std::fprintf(stderr, "netloop-demo: %s\n", why.c_str());
    return kExitUsage;
  }
  if (auto ec = server.handle_signals([&sources] {
        log_info("{}", demo::one_line_summary(sources));
      }).error()) {
    std::fprintf(stderr, "netloop-demo: cannot handle signals: %s\n", ec.message().c_str());
    return 1;
  }
  if (std::string why = demo::handle_tls_reload(server, run); !why.empty()) {
    std::fprintf(stderr, "netloop-demo: %s\n", why.c_str());
    return 1;
  }
  // "Ready" only once SIGTERM drains rather than kills: a supervisor (or a test) may stop
  // the demo as soon as it reads the banner.
  print_banner(server, run, std::string(server.loop(0).backend_name()));
  server.run();
  size_t datagram_index = 0;
  for (const auto& b : server.bound()) {
    if (!b.datagram) continue;
    UdpStats st = server.datagram_stats(datagram_index++);
    log_info("{} {}: {} datagrams in, {} out, dropped: {} truncated, {} send buffer full, "
             "{} too large, {} send errors; {} peer errors ignored",
             b.name, b.address.to_string(), st.datagrams_in, st.datagrams_out,
             st.dropped_truncated, st.dropped_send_full, st.dropped_too_large,
             st.dropped_send_error, st.peer_errors);
  }
  log_info("{}", demo::one_line_summary(sources));
  return handover.exit_code();
}
