// Prometheus text and the SIGUSR1 line.
#include "server_metrics.hpp"

#include <fmt/format.h>

namespace netloop::demo {
namespace {

struct HttpTotals {
  uint64_t requests = 0, bad = 0, timeouts = 0, refused = 0, files = 0, cache_hits = 0,
           not_modified = 0, partial = 0;
  uint64_t by_class[6] = {};
};

HttpTotals http_totals(const MetricsSources& s) {
  HttpTotals t;
  for (const auto* h : s.http) {
    t.requests += h->requests;
    t.bad += h->bad_requests;
    t.timeouts += h->timeouts;
    t.refused += h->refused;
    t.files += h->files_sent;
    t.cache_hits += h->cache_hits;
    t.not_modified += h->not_modified;
    t.partial += h->partial;
    for (int c = 1; c < 6; ++c) t.by_class[c] += h->responses[c];
  }
  return t;
}

void metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            uint64_t value) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name,
                 type, name, value);
}

}  // namespace

std::string render_prometheus(const MetricsSources& s) {
  ServerTotals t = s.server->totals();
  std::string out;
  out.reserve(4096);
  metric(out, "netloop_loops", "gauge", "Event loops (threads).", s.server->loop_count());
  metric(out, "netloop_connections_open", "gauge", "TCP connections open now.", t.connections_open);
  metric(out, "netloop_connections_accepted_total", "counter", "TCP connections accepted.",
         t.accepted);
  metric(out, "netloop_connections_refused_total", "counter",
         "TCP connections refused past --max-connections.", t.refused);
  metric(out, "netloop_tcp_bytes_in_total", "counter", "Bytes read from TCP peers.", t.tcp_bytes_in);
  metric(out, "netloop_tcp_bytes_out_total", "counter", "Bytes written to TCP peers.",
         t.tcp_bytes_out);
  out += "# HELP netloop_connections_closed_total TCP connections closed, by reason.\n"
         "# TYPE netloop_connections_closed_total counter\n";
  const std::pair<const char*, uint64_t> closes[] = {
      {"local", t.closed_local},   {"peer", t.closed_peer},   {"aborted", t.closed_aborted},
      {"reset", t.closed_reset},   {"error", t.closed_error}, {"shutdown", t.closed_shutdown},
      {"protocol", t.closed_protocol}, {"idle", t.closed_idle}};
  for (const auto& [reason, n] : closes)
    fmt::format_to(std::back_inserter(out), "netloop_connections_closed_total{{reason=\"{}\"}} {}\n",
                   reason, n);
  out += "# HELP netloop_errors_total Errors, by kind.\n# TYPE netloop_errors_total counter\n";
  const std::pair<const char*, uint64_t> errors[] = {
      {"accept", t.accept_errors},         {"out_of_descriptors", t.dropped_no_fds},
      {"write_timeout", t.write_timeouts}, {"udp_peer", t.udp_peer_errors}};
  for (const auto& [kind, n] : errors)
    fmt::format_to(std::back_inserter(out), "netloop_errors_total{{kind=\"{}\"}} {}\n", kind, n);
  metric(out, "netloop_datagrams_in_total", "counter", "UDP datagrams received.", t.datagrams_in);
  metric(out, "netloop_datagrams_out_total", "counter", "UDP datagrams sent.", t.datagrams_out);
  metric(out, "netloop_datagrams_dropped_total", "counter",
         "UDP datagrams dropped (truncated, send buffer full, too large, send errors).",
         t.datagrams_dropped);
  if (!s.http.empty()) {
    HttpTotals h = http_totals(s);
    metric(out, "netloop_http_requests_total", "counter", "HTTP requests parsed.", h.requests);
    out += "# HELP netloop_http_responses_total HTTP responses, by status class.\n"
           "# TYPE netloop_http_responses_total counter\n";
    for (int c = 1; c < 6; ++c)
      fmt::format_to(std::back_inserter(out), "netloop_http_responses_total{{code=\"{}xx\"}} {}\n",
                     c, h.by_class[c]);
    metric(out, "netloop_http_bad_requests_total", "counter",
           "HTTP requests rejected by the parser.", h.bad);
    metric(out, "netloop_http_timeouts_total", "counter",
           "HTTP header-read (408) and keep-alive idle timeouts.", h.timeouts);
    metric(out, "netloop_http_sendfile_responses_total", "counter",
           "HTTP responses sent with sendfile.", h.files);
    metric(out, "netloop_http_not_modified_total", "counter",
           "HTTP 304 responses (conditional requests whose validator matched).", h.not_modified);
    metric(out, "netloop_http_partial_total", "counter", "HTTP 206 responses (Range requests).",
           h.partial);
  }
  return out;
}

std::string one_line_summary(const MetricsSources& s) {
  ServerTotals t = s.server->totals();
  std::string line = fmt::format(
      "stats: loops={} connections open={} accepted={} refused={}; tcp bytes in={} out={}; "
      "closed local={} peer={} reset={} error={} aborted={} shutdown={} protocol={} idle={}; "
      "udp in={} out={} "
      "dropped={}",
      s.server->loop_count(), t.connections_open, t.accepted, t.refused, t.tcp_bytes_in,
      t.tcp_bytes_out, t.closed_local, t.closed_peer, t.closed_reset, t.closed_error,
      t.closed_aborted, t.closed_shutdown, t.closed_protocol, t.closed_idle, t.datagrams_in, t.datagrams_out, t.datagrams_dropped);
  if (!s.http.empty()) {
    HttpTotals h = http_totals(s);
    line += fmt::format("; http requests={} 2xx={} 3xx={} 4xx={} 5xx={} timeouts={}", h.requests,
                        h.by_class[2], h.by_class[3], h.by_class[4], h.by_class[5], h.timeouts);
  }
  return line;
}

}  // namespace netloop::demo
