// netloop-demo: serves every built-in protocol, on one event loop or several.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat.hpp"
#include "demo_options.hpp"
#include "echo/tcp_echo.hpp"
#include "echo/udp_echo.hpp"
#include "http/http_handler.hpp"
#include "http/http_responder.hpp"
#include "http/metrics_endpoint.hpp"
#include "kv/kv.hpp"
#include "netloop/log.hpp"
#include "netloop/server.hpp"
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
    std::printf("netloop-demo %s\n", NETLOOP_VERSION);
    return 0;
  }
  if (opt.list_pollers) return list_pollers();
  set_log_level(opt.log_level);
  std::signal(SIGPIPE, SIG_IGN);  // sends use MSG_NOSIGNAL; this covers anything else

  // The served root is checked once, before any loop exists, so a bad --root is a clear
  // exit 2 rather than N identical failures.
  if (!opt.http.empty() && !opt.http_options.root.empty()) {
    if (auto probe = http::HttpResponder::create(opt.http_options); !probe) {
      std::fprintf(stderr, "netloop-demo: --root %s: %s\n", opt.http_options.root.c_str(),
                   probe.error().message().c_str());
      return kExitUsage;
    }
  }

  ServerOptions so;
  so.threads = opt.threads;
  so.poller = opt.poller;
  so.drain_timeout = opt.drain_timeout;
  so.max_connections = opt.max_connections;
  so.listener.connection = opt.connection;
  so.udp = opt.udp;
  Server server(so);

  for (const auto& addr : opt.tcp_echo)
    server.add_stream("tcp-echo", addr, [](EventLoop&, size_t) {
      return StreamService{echo::tcp_echo_factory(), {}};
    });
  // One responder per loop (its cache and counters are that loop's); kept for metrics.
  auto responders = std::make_shared<std::vector<std::shared_ptr<http::HttpResponder>>>(opt.threads);
  for (const auto& addr : opt.http)
    server.add_stream("http", addr, [&opt, responders](EventLoop&, size_t i) {
      auto& r = (*responders)[i];
      if (!r) r = *http::HttpResponder::create(opt.http_options);  // the root was checked
      return StreamService{r->factory(), http::refusal_factory(r)};
    });
  // The examples share state among their connections: they stay on the first loop.
  if (!opt.chat.empty()) {
    auto room = demo::chat::make_chat_room();
    for (const auto& addr : opt.chat)
      server.add_stream("chat", addr, [room](EventLoop&, size_t) {
        return StreamService{demo::chat::chat_factory(room), {}};
      }, /*every_loop=*/false);
  }
  if (!opt.kv.empty()) {
    auto store = demo::kv::make_kv_store();
    for (const auto& addr : opt.kv)
      server.add_stream("kv", addr, [store](EventLoop&, size_t) {
        return StreamService{demo::kv::kv_factory(store), {}};
      }, /*every_loop=*/false);
  }
  for (const auto& addr : opt.udp_echo)
    server.add_datagram("udp-echo", addr, [](EventLoop&, size_t) {
      return echo::make_udp_echo_handler();
    });

  demo::MetricsSources sources;
  sources.server = &server;
  if (opt.metrics) {
    server.add_stream("metrics", *opt.metrics, [&sources, &opt](EventLoop&, size_t) {
      // Outside --max-connections (a scrape must still get through when the server is
      // full), under a small cap of its own.
      http::MetricsOptions mo;
      mo.http = opt.http_options;
      mo.max_connections = opt.metrics_max_connections;
      return StreamService{http::metrics_factory([&sources] {
                             return demo::render_prometheus(sources);
                           }, mo),
                           {}, /*unlimited=*/true};
    }, /*every_loop=*/false);
  }

  std::string why;
  if (auto ec = server.start(&why)) {
    std::fprintf(stderr, "netloop-demo: %s\n", why.c_str());
    return kExitUsage;
  }
  for (const auto& r : *responders)
    if (r) sources.http.push_back(&r->stats());

  const std::string backend(server.loop(0).backend_name());
  for (const auto& b : server.bound()) {
    std::string detail = "poller " + backend;
    if (opt.threads > 1)
      detail += ", " + std::to_string(b.name == "chat" || b.name == "kv" || b.name == "metrics"
                                          ? 1
                                          : opt.threads) + " loop(s)";
    if (b.name == "http")
      detail += opt.http_options.root.empty()
                    ? ", built-in page"
                    : ", root " + (*responders)[0]->root_path();
    std::printf("netloop-demo: %s listening on %s (%s)\n", b.name.c_str(),
                b.address.to_string().c_str(), detail.c_str());
  }
  std::fflush(stdout);

  if (auto ec = server.handle_signals([&sources] {
        log_info("{}", demo::one_line_summary(sources));
      })) {
    std::fprintf(stderr, "netloop-demo: cannot handle signals: %s\n", ec.message().c_str());
    return 1;
  }
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
  return 0;
}
