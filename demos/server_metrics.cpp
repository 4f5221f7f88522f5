// Prometheus text and the SIGUSR1 line.
#include "server_metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace netloop::demo {
namespace {

struct HttpTotals {
  uint64_t requests = 0, bad = 0, timeouts = 0, refused = 0, files = 0, cache_hits = 0,
           not_modified = 0, partial = 0, rate_limited = 0;
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
    t.rate_limited += h->rate_limited;
    for (int c = 1; c < 6; ++c) t.by_class[c] += h->responses[c];
  }
  return t;
}

// One --tcp-proxy listener's counters, summed over its loops.
struct ProxyTotals {
  std::string listener;
  std::vector<std::string> upstreams;
  std::vector<proxy::UpstreamStats> per_upstream;
  uint64_t clients = 0, no_upstream = 0, idle_closed = 0;
};

std::vector<ProxyTotals> proxy_totals(const MetricsSources& s) {
  std::vector<ProxyTotals> out;
  for (const auto* p : s.proxy) {
    auto it = std::find_if(out.begin(), out.end(),
                           [p](const ProxyTotals& t) { return t.listener == p->listener; });
    if (it == out.end()) {
      out.push_back({p->listener, p->upstreams, std::vector<proxy::UpstreamStats>(p->upstreams.size())});
      it = out.end() - 1;
    }
    for (size_t i = 0; i < p->per_upstream.size() && i < it->per_upstream.size(); ++i) {
      const auto& from = p->per_upstream[i];
      auto& to = it->per_upstream[i];
      to.connects += from.connects;
      to.failures += from.failures;
      to.bytes_out += from.bytes_out;
      to.bytes_in += from.bytes_in;
    }
    it->clients += p->clients;
    it->no_upstream += p->no_upstream;
    it->idle_closed += p->idle_closed;
  }
  return out;
}

void render_proxy(std::string& out, const MetricsSources& s) {
  auto totals = proxy_totals(s);
  auto family = [&out](std::string_view name, std::string_view help) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} counter\n", name, help, name);
  };
  auto per_upstream = [&](std::string_view name, std::string_view help, auto value) {
    family(name, help);
    for (const auto& t : totals)
      for (size_t i = 0; i < t.upstreams.size(); ++i)
        fmt::format_to(std::back_inserter(out), "{}{{listener=\"{}\",upstream=\"{}\"}} {}\n", name,
                       t.listener, t.upstreams[i], value(t.per_upstream[i]));
  };
  per_upstream("netloop_proxy_upstream_connects_total", "TCP proxy: upstream connections made.",
               [](const proxy::UpstreamStats& u) { return u.connects.get(); });
  per_upstream("netloop_proxy_upstream_failures_total",
               "TCP proxy: upstream connects that failed (refused, unreachable, timed out).",
               [](const proxy::UpstreamStats& u) { return u.failures.get(); });
  family("netloop_proxy_upstream_bytes_total",
         "TCP proxy: bytes forwarded, to the upstream (out) and from it (in).");
  for (const auto& t : totals)
    for (size_t i = 0; i < t.upstreams.size(); ++i)
      for (auto [dir, n] : {std::pair<const char*, uint64_t>{"out", t.per_upstream[i].bytes_out},
                            {"in", t.per_upstream[i].bytes_in}})
        fmt::format_to(std::back_inserter(out),
                       "netloop_proxy_upstream_bytes_total{{listener=\"{}\",upstream=\"{}\",direction=\"{}\"}} {}\n",
                       t.listener, t.upstreams[i], dir, n);
  auto per_listener = [&](std::string_view name, std::string_view help, auto value) {
    family(name, help);
    for (const auto& t : totals)
      fmt::format_to(std::back_inserter(out), "{}{{listener=\"{}\"}} {}\n", name, t.listener, value(t));
  };
  per_listener("netloop_proxy_clients_total", "TCP proxy: clients accepted.",
               [](const ProxyTotals& t) { return t.clients; });
  per_listener("netloop_proxy_no_upstream_total",
               "TCP proxy: clients closed because no upstream could be reached.",
               [](const ProxyTotals& t) { return t.no_upstream; });
  per_listener("netloop_proxy_idle_closed_total", "TCP proxy: pairs closed after the idle timeout.",
               [](const ProxyTotals& t) { return t.idle_closed; });
}

void render_tls(std::string& out, const MetricsSources& s) {
  std::vector<TlsStats> stats;
  for (const auto& t : s.tls) stats.push_back(t.stats());
  auto family = [&](std::string_view name, std::string_view help, auto value) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} counter\n", name, help, name);
    for (size_t i = 0; i < stats.size(); ++i)
      fmt::format_to(std::back_inserter(out), "{}{{context=\"{}\"}} {}\n", name, s.tls[i].context,
                     value(stats[i]));
  };
  family("netloop_tls_handshakes_total", "TLS handshakes finished.",
         [](const TlsStats& t) { return t.handshakes; });
  family("netloop_tls_resumed_total", "TLS handshakes that resumed a session.",
         [](const TlsStats& t) { return t.resumed; });
  family("netloop_tls_handshake_failures_total",
         "TLS handshakes broken off, refused, or failing verification.",
         [](const TlsStats& t) { return t.handshake_failures; });
  family("netloop_tls_handshake_timeouts_total", "TLS handshakes not finished in time.",
         [](const TlsStats& t) { return t.handshake_timeouts; });
  family("netloop_tls_close_notify_unsent_total",
         "Orderly TLS closes whose close_notify found the send buffer full.",
         [](const TlsStats& t) { return t.close_notify_unsent; });
}

void metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            uint64_t value) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name,
                 type, name, value);
}

// --proxy-protocol: headers read, and connections closed before their handler by reason.
void render_proxy_protocol(std::string& out, const ServerTotals& t) {
  metric(out, "netloop_proxy_protocol_accepted_total", "counter",
         "PROXY protocol headers read whole and valid.", t.proxy_protocol.accepted);
  out += "# HELP netloop_proxy_protocol_rejected_total Connections closed at their PROXY "
         "protocol header, by reason.\n"
         "# TYPE netloop_proxy_protocol_rejected_total counter\n";
  const std::pair<const char*, uint64_t> rejected[] = {
      {"untrusted", t.proxy_protocol.untrusted},
      {"invalid", t.proxy_protocol.invalid},
      {"timeout", t.proxy_protocol.timeouts},
      {"aborted", t.proxy_protocol.aborted}};
  for (const auto& [reason, n] : rejected)
    fmt::format_to(std::back_inserter(out),
                   "netloop_proxy_protocol_rejected_total{{reason=\"{}\"}} {}\n", reason, n);
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
         "TCP connections refused at accept, for any reason (see netloop_refused_total).",
         t.refused + t.refused_per_client);
  out += "# HELP netloop_refused_total TCP connections refused at accept, by reason.\n"
         "# TYPE netloop_refused_total counter\n";
  fmt::format_to(std::back_inserter(out),
                 "netloop_refused_total{{reason=\"max_connections\"}} {}\n"
                 "netloop_refused_total{{reason=\"per_client\"}} {}\n",
                 t.refused, t.refused_per_client);
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
  render_proxy_protocol(out, t);
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
    metric(out, "netloop_http_rate_limited_total", "counter",
           "HTTP 429 responses: requests past the client's --rate-limit.", h.rate_limited);
  }
  if (!s.proxy.empty()) render_proxy(out, s);
  if (!s.tls.empty()) render_tls(out, s);
  return out;
}

std::string one_line_summary(const MetricsSources& s) {
  ServerTotals t = s.server->totals();
  std::string line = fmt::format(
      "stats: loops={} connections open={} accepted={} refused={} per_client={}; "
      "tcp bytes in={} out={}; "
      "closed local={} peer={} reset={} error={} aborted={} shutdown={} protocol={} idle={}; "
      "udp in={} out={} "
      "dropped={}",
      s.server->loop_count(), t.connections_open, t.accepted, t.refused, t.refused_per_client,
      t.tcp_bytes_in,
      t.tcp_bytes_out, t.closed_local, t.closed_peer, t.closed_reset, t.closed_error,
      t.closed_aborted, t.closed_shutdown, t.closed_protocol, t.closed_idle, t.datagrams_in, t.datagrams_out, t.datagrams_dropped);
  if (const auto& p = t.proxy_protocol;
      p.accepted + p.untrusted + p.invalid + p.timeouts + p.aborted > 0)
    line += fmt::format("; proxy-protocol accepted={} untrusted={} invalid={} timeouts={} aborted={}",
                        p.accepted, p.untrusted, p.invalid, p.timeouts, p.aborted);
  if (!s.http.empty()) {
    HttpTotals h = http_totals(s);
    line += fmt::format("; http requests={} 2xx={} 3xx={} 4xx={} 5xx={} timeouts={} rate_limited={}",
                        h.requests, h.by_class[2], h.by_class[3], h.by_class[4], h.by_class[5],
                        h.timeouts, h.rate_limited);
  }
  if (!s.proxy.empty()) {
    uint64_t clients = 0, connects = 0, failures = 0, no_upstream = 0;
    for (const auto& t : proxy_totals(s)) {
      clients += t.clients;
      no_upstream += t.no_upstream;
      for (const auto& u : t.per_upstream) {
        connects += u.connects;
        failures += u.failures;
      }
    }
    line += fmt::format("; proxy clients={} upstream connects={} failures={} no_upstream={}",
                        clients, connects, failures, no_upstream);
  }
  for (const auto& t : s.tls) {
    TlsStats st = t.stats();
    line += fmt::format("; tls {} handshakes={} resumed={} failures={} timeouts={}", t.context,
                        st.handshakes, st.resumed, st.handshake_failures, st.handshake_timeouts);
  }
  return line;
}

}  // namespace netloop::demo
