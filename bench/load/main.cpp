// netloop-load: a load generator on one netloop event loop (TCP and UDP echo, HTTP/1.1
// GETs, Redis commands); prints throughput and round-trip latency percentiles (and UDP
// loss, HTTP status codes, Redis reply types) as a table or one JSON object.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "echo_workload.hpp"
#include "http_workload.hpp"
#include "netloop/event_loop.hpp"
#include "options.hpp"
#include "resp_workload.hpp"
#include "stream_load.hpp"
#include "udp_client.hpp"

using namespace netloop;
using namespace netloop::load;

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

#ifndef NETLOOP_VERSION
#define NETLOOP_VERSION "unknown"
#endif

struct Summary {
  double seconds;
  double messages_per_s;
  double mb_per_s;
  double p50_us, p99_us, p999_us, mean_us, min_us, max_us;
};

// Rates and latency percentiles of one measured window, whatever was counted (round trips
// or datagrams).
Summary summarize(const Histogram& h, double seconds, uint64_t count, size_t size) {
  Summary s{};
  s.seconds = seconds;
  s.messages_per_s = seconds > 0 ? double(count) / seconds : 0.0;
  s.mb_per_s = s.messages_per_s * double(size) / 1e6;
  s.p50_us = double(h.percentile(0.50)) / 1e3;
  s.p99_us = double(h.percentile(0.99)) / 1e3;
  s.p999_us = double(h.percentile(0.999)) / 1e3;
  s.mean_us = h.mean() / 1e3;
  s.min_us = double(h.min()) / 1e3;
  s.max_us = double(h.max()) / 1e3;
  return s;
}

using ull = unsigned long long;

// A JSON string: the target and key are checked printable ASCII, but a URL may hold '"'.
std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void print_latency_line(const Summary& s) {
  std::printf("  latency (us)   p50 %.1f   p99 %.1f   p99.9 %.1f   (mean %.1f, min %.1f, max %.1f)\n",
              s.p50_us, s.p99_us, s.p999_us, s.mean_us, s.min_us, s.max_us);
}

std::string latency_json(const Summary& s) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "\"latency_us\":{\"p50\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"mean\":%.2f,\"min\":%.2f,"
                "\"max\":%.2f}",
                s.p50_us, s.p99_us, s.p999_us, s.mean_us, s.min_us, s.max_us);
  return buf;
}

void print_measured(const char* what, const LoadOptions& opt, const Summary& s) {
  std::printf("netloop-load: %s %s, %s, %zu connections, pipeline %zu, %.2f s measured",
              opt.scenario.c_str(), opt.target_text.c_str(), what, opt.connections, opt.pipeline,
              s.seconds);
  if (opt.warmup > 0) std::printf(" after %.2f s warm-up", opt.warmup);
  std::printf("\n");
}

void print_connections(const StreamLoad& load, const LoadOptions& opt) {
  const StreamTally& t = load.tally();
  std::printf("  connections    %zu of %zu", load.live_connections(), opt.connections);
  if (t.reconnects) std::printf("  (%llu made again after a close)", ull(t.reconnects));
  std::printf("\n  writes         %llu  (%.1f requests each)\n", ull(t.writes),
              t.writes ? double(t.total_requests) / double(t.writes) : 0.0);
  std::printf("  errors         %llu\n", ull(t.errors));
}

void print_echo_table(const StreamLoad& load, const EchoWorkload& echo, const LoadOptions& opt,
                      const Summary& s) {
  const StreamTally& t = load.tally();
  std::printf("netloop-load: tcp-echo %s%s, %zu-byte messages, pipeline %zu, %.2f s measured",
              opt.target_text.c_str(), opt.tls ? " over TLS" : "", opt.size, opt.pipeline, s.seconds);
  if (opt.warmup > 0) std::printf(" after %.2f s warm-up", opt.warmup);
  std::printf("\n");
  std::printf("  messages/s     %.1f  (%llu round trips)\n", s.messages_per_s, ull(t.requests));
  std::printf("  MB/s           %.2f  (echoed payload, one direction, 10^6 bytes)\n", s.mb_per_s);
  print_latency_line(s);
  std::printf("  connections    %zu of %zu\n", load.live_connections(), opt.connections);
  std::printf("  errors         %llu\n", ull(t.errors));
  std::printf("  mismatches     %llu\n", ull(echo.mismatches()));
}

void print_echo_json(const StreamLoad& load, const EchoWorkload& echo, const LoadOptions& opt,
                     const Summary& s) {
  const StreamTally& t = load.tally();
  std::printf(
      "{\"scenario\":\"tcp-echo\",\"target\":%s,\"tls\":%s,\"connections\":%zu,\"live_connections\":%zu,"
      "\"size\":%zu,\"pipeline\":%zu,\"duration_s\":%.3f,\"warmup_s\":%.3f,\"measured_s\":%.6f,"
      "\"messages\":%llu,\"total_messages\":%llu,\"messages_per_s\":%.1f,\"mb_per_s\":%.3f,"
      "%s,\"errors\":%llu,\"mismatches\":%llu,\"interrupted\":%s}\n",
      json_string(opt.target_text).c_str(), opt.tls ? "true" : "false", opt.connections,
      load.live_connections(), opt.size,
      opt.pipeline, opt.duration, opt.warmup, s.seconds, ull(t.requests), ull(t.total_requests),
      s.messages_per_s, s.mb_per_s, latency_json(s).c_str(), ull(t.errors), ull(echo.mismatches()),
      load.interrupted() ? "true" : "false");
}

void print_http_table(const StreamLoad& load, const HttpWorkload& http, const LoadOptions& opt,
                      const Summary& s) {
  const StreamTally& t = load.tally();
  print_measured("GET", opt, s);
  std::printf("  requests/s     %.1f  (%llu responses)\n", s.messages_per_s, ull(t.requests));
  std::printf("  MB/s           %.2f  (received: heads and bodies, 10^6 bytes)\n", s.mb_per_s);
  print_latency_line(s);
  std::printf("  status        ");
  bool any = false;
  for (int code = 100; code <= HttpWorkload::kMaxStatus; ++code) {
    if (uint64_t n = http.statuses()[size_t(code)]) {
      std::printf("%s %d: %llu", any ? "," : "", code, ull(n));
      any = true;
    }
  }
  std::printf("%s\n", any ? "" : " (no response)");
  print_connections(load, opt);
}

void print_http_json(const StreamLoad& load, const HttpWorkload& http, const LoadOptions& opt,
                     const Summary& s) {
  const StreamTally& t = load.tally();
  std::string status;
  for (int code = 100; code <= HttpWorkload::kMaxStatus; ++code) {
    if (uint64_t n = http.statuses()[size_t(code)]) {
      if (!status.empty()) status += ",";
      status += '"';
      status += std::to_string(code);
      status += "\":";
      status += std::to_string(n);
    }
  }
  std::printf(
      "{\"scenario\":\"http\",\"target\":%s,\"tls\":%s,\"host\":%s,\"port\":%u,\"path\":%s,"
      "\"connections\":%zu,\"live_connections\":%zu,\"pipeline\":%zu,\"duration_s\":%.3f,"
      "\"warmup_s\":%.3f,\"measured_s\":%.6f,\"requests\":%llu,\"total_requests\":%llu,"
      "\"requests_per_s\":%.1f,\"mb_per_s\":%.3f,%s,\"status\":{%s},\"errors\":%llu,"
      "\"reconnects\":%llu,\"writes\":%llu,\"interrupted\":%s}\n",
      json_string(opt.target_text).c_str(), opt.tls ? "true" : "false", json_string(opt.host).c_str(),
      unsigned(opt.port), json_string(opt.path).c_str(), opt.connections, load.live_connections(), opt.pipeline,
      opt.duration, opt.warmup, s.seconds, ull(t.requests), ull(t.total_requests), s.messages_per_s,
      s.mb_per_s, latency_json(s).c_str(), status.c_str(), ull(t.errors), ull(t.reconnects),
      ull(t.writes), load.interrupted() ? "true" : "false");
}

void print_resp_table(const StreamLoad& load, const RespWorkload& resp, const LoadOptions& opt,
                      const Summary& s) {
  const StreamTally& t = load.tally();
  std::string what = to_string(opt.command);
  if (opt.command != RespCommand::ping) what.append(" ").append(opt.key);
  if (opt.command == RespCommand::set)
    what.append(" (").append(std::to_string(opt.size)).append("-byte value)");
  print_measured(what.c_str(), opt, s);
  std::printf("  requests/s     %.1f  (%llu replies)\n", s.messages_per_s, ull(t.requests));
  print_latency_line(s);
  std::printf("  replies       ");
  bool any = false;
  for (size_t i = 0; i < RespReplyParser::kTypes; ++i) {
    if (uint64_t n = resp.replies()[i]) {
      std::printf("%s %s: %llu", any ? "," : "", RespReplyParser::name(RespReplyParser::Type(i)), ull(n));
      any = true;
    }
  }
  std::printf("%s\n", any ? "" : " (no reply)");
  print_connections(load, opt);
}

void print_resp_json(const StreamLoad& load, const RespWorkload& resp, const LoadOptions& opt,
                     const Summary& s) {
  const StreamTally& t = load.tally();
  std::string replies;
  for (size_t i = 0; i < RespReplyParser::kTypes; ++i) {
    if (i) replies += ",";
    replies.append("\"").append(RespReplyParser::name(RespReplyParser::Type(i))).append("\":");
    replies += std::to_string(resp.replies()[i]);
  }
  std::printf(
      "{\"scenario\":\"resp\",\"target\":%s,\"command\":\"%s\",\"key\":%s,\"size\":%zu,"
      "\"connections\":%zu,\"live_connections\":%zu,\"pipeline\":%zu,\"duration_s\":%.3f,"
      "\"warmup_s\":%.3f,\"measured_s\":%.6f,\"requests\":%llu,\"total_requests\":%llu,"
      "\"requests_per_s\":%.1f,%s,\"replies\":{%s},\"error_replies\":%llu,\"errors\":%llu,"
      "\"reconnects\":%llu,\"writes\":%llu,\"interrupted\":%s}\n",
      json_string(opt.target_text).c_str(), to_string(opt.command), json_string(opt.key).c_str(),
      opt.command == RespCommand::ping ? size_t(0) : opt.size, opt.connections,
      load.live_connections(), opt.pipeline, opt.duration, opt.warmup, s.seconds, ull(t.requests),
      ull(t.total_requests), s.messages_per_s, latency_json(s).c_str(), replies.c_str(),
      ull(resp.replies_of(RespReplyParser::Type::error)), ull(t.errors), ull(t.reconnects),
      ull(t.writes), load.interrupted() ? "true" : "false");
}

// tcp-echo, http and resp: connections made by the Connector, one workload each.
int run_stream(EventLoop& loop, const LoadOptions& opt) {
  std::unique_ptr<EchoWorkload> echo;
  std::unique_ptr<HttpWorkload> http;
  std::unique_ptr<RespWorkload> resp;
  Workload* workload;
  if (opt.scenario == "http") workload = (http = std::make_unique<HttpWorkload>(opt)).get();
  else if (opt.scenario == "resp") workload = (resp = std::make_unique<RespWorkload>(opt)).get();
  else workload = (echo = std::make_unique<EchoWorkload>(opt)).get();

  auto load = std::make_unique<StreamLoad>(loop, opt, *workload);  // the histogram is ~60 KiB
  std::string why;
  if (!load->run(&why)) {
    std::fprintf(stderr, "netloop-load: %s\n", why.c_str());
    return kExitFailed;
  }
  const StreamTally& t = load->tally();
  const double seconds = load->measured_seconds();
  Summary s = summarize(load->latency(), seconds, t.requests, echo ? opt.size : 0);
  if (!echo) s.mb_per_s = seconds > 0 ? double(t.bytes_in) / seconds / 1e6 : 0.0;
  if (echo) opt.json ? print_echo_json(*load, *echo, opt, s) : print_echo_table(*load, *echo, opt, s);
  if (http) opt.json ? print_http_json(*load, *http, opt, s) : print_http_table(*load, *http, opt, s);
  if (resp) opt.json ? print_resp_json(*load, *resp, opt, s) : print_resp_table(*load, *resp, opt, s);
  std::fflush(stdout);

  bool failed = load->interrupted() || t.errors > 0;
  if (load->interrupted()) std::fprintf(stderr, "netloop-load: interrupted; the run is incomplete\n");
  if (echo && echo->mismatches()) {
    std::fprintf(stderr, "netloop-load: %llu echoed message(s) did not match what was sent\n",
                 ull(echo->mismatches()));
    failed = true;
  }
  if (t.errors)
    std::fprintf(stderr, "netloop-load: %llu connection(s) lost during the run\n", ull(t.errors));
  if (t.total_requests == 0 && !load->interrupted()) {
    std::fprintf(stderr, "netloop-load: the server answered no request in %.2f s\n",
                 opt.warmup + opt.duration);
    failed = true;
  }
  return failed ? kExitFailed : 0;
}

void print_udp_table(const UdpLoadClient& client, const LoadOptions& opt, const Summary& s) {
  const UdpTally& t = client.tally();
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("netloop-load: udp-echo %s, %zu-byte datagrams, pipeline %zu, %.2f s measured",
              opt.target.to_string().c_str(), opt.size, opt.pipeline, s.seconds);
  if (opt.warmup > 0) std::printf(" after %.2f s warm-up", opt.warmup);
  std::printf("\n");
  std::printf("  datagrams/s    %.1f  (%llu round trips)\n", s.messages_per_s, u(t.datagrams));
  std::printf("  MB/s           %.2f  (echoed payload, one direction, 10^6 bytes)\n", s.mb_per_s);
  std::printf("  latency (us)   p50 %.1f   p99 %.1f   p99.9 %.1f   (mean %.1f, min %.1f, max %.1f)\n",
              s.p50_us, s.p99_us, s.p999_us, s.mean_us, s.min_us, s.max_us);
  std::printf("  lost           %llu  (%.3f%% of the measured window; no echo within %.0f ms)\n",
              u(t.lost), client.loss_fraction() * 100, opt.loss_timeout * 1e3);
  std::printf("  clients        %zu\n", opt.connections);
  std::printf("  late echoes    %llu  (after their datagram was counted lost, or duplicated)\n",
              u(t.late));
  std::printf("  mismatches     %llu\n", u(t.mismatches));
  if (t.send_errors || t.icmp_errors)
    std::printf("  socket errors  %llu sends refused, %llu ICMP errors\n", u(t.send_errors),
                u(t.icmp_errors));
}

void print_udp_json(const UdpLoadClient& client, const LoadOptions& opt, const Summary& s) {
  const UdpTally& t = client.tally();
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf(
      "{\"scenario\":\"udp-echo\",\"target\":\"%s\",\"clients\":%zu,\"size\":%zu,"
      "\"pipeline\":%zu,\"duration_s\":%.3f,\"warmup_s\":%.3f,\"measured_s\":%.6f,"
      "\"datagrams\":%llu,\"total_datagrams\":%llu,\"datagrams_per_s\":%.1f,\"mb_per_s\":%.3f,"
      "\"latency_us\":{\"p50\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"mean\":%.2f,\"min\":%.2f,"
      "\"max\":%.2f},\"sent\":%llu,\"total_sent\":%llu,\"lost\":%llu,\"total_lost\":%llu,"
      "\"loss_pct\":%.4f,\"loss_timeout_ms\":%.1f,\"max_loss\":%.6g,\"late\":%llu,"
      "\"mismatches\":%llu,\"send_errors\":%llu,\"icmp_errors\":%llu,\"receive_calls\":%llu,"
      "\"send_calls\":%llu,\"interrupted\":%s}\n",
      opt.target.to_string().c_str(), opt.connections, opt.size, opt.pipeline, opt.duration,
      opt.warmup, s.seconds, u(t.datagrams), u(t.total_datagrams), s.messages_per_s, s.mb_per_s,
      s.p50_us, s.p99_us, s.p999_us, s.mean_us, s.min_us, s.max_us, u(t.sent), u(t.total_sent),
      u(t.lost), u(t.total_lost), client.loss_fraction() * 100, opt.loss_timeout * 1e3,
      opt.max_loss, u(t.late), u(t.mismatches), u(t.send_errors), u(t.icmp_errors),
      u(t.receive_calls), u(t.send_calls), client.interrupted() ? "true" : "false");
}

int run_udp(EventLoop& loop, const LoadOptions& opt) {
  auto client = std::make_unique<UdpLoadClient>(loop, opt);
  std::string why;
  if (!client->run(&why)) {
    std::fprintf(stderr, "netloop-load: %s\n", why.c_str());
    return kExitFailed;
  }
  Summary s = summarize(client->latency(), client->measured_seconds(), client->tally().datagrams,
                        opt.size);
  if (opt.json) print_udp_json(*client, opt, s);
  else print_udp_table(*client, opt, s);
  std::fflush(stdout);

  const UdpTally& t = client->tally();
  bool too_lossy = client->loss_fraction() > opt.max_loss;
  if (client->interrupted()) std::fprintf(stderr, "netloop-load: interrupted; the run is incomplete\n");
  if (t.mismatches)
    std::fprintf(stderr, "netloop-load: %llu echo(es) did not match what was sent\n",
                 static_cast<unsigned long long>(t.mismatches));
  if (too_lossy)
    std::fprintf(stderr, "netloop-load: %.3f%% of the datagrams were lost, more than --max-loss %.3f%%\n",
                 client->loss_fraction() * 100, opt.max_loss * 100);
  return (t.mismatches || too_lossy || client->interrupted()) ? kExitFailed : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = parse_load_options(args);
  if (!parsed.options) {
    std::fprintf(stderr, "netloop-load: %s\n", parsed.error.c_str());
    return kExitUsage;
  }
  const LoadOptions& opt = *parsed.options;
  if (opt.help) {
    std::fputs(load_usage().c_str(), stdout);
    return 0;
  }
  if (opt.version) {
    std::printf("netloop-load %s\n", NETLOOP_VERSION);
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);  // sends use MSG_NOSIGNAL; this covers anything else

  std::string why;
  // Named explicitly: at commit 59ccd6a create_poller("") kept a string_view into a
  // destroyed temporary (registry.cpp); a live string works with every version.
  std::string backend = default_backend();
  auto loop = EventLoop::create(backend, &why);
  if (!loop) {
    std::fprintf(stderr, "netloop-load: %s\n", why.c_str());
    return kExitFailed;
  }
  if (opt.scenario == "udp-echo") return run_udp(**loop, opt);
  return run_stream(**loop, opt);
}
