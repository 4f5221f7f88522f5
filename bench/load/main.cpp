// netloop-load: a TCP and UDP echo load generator on one netloop event loop; prints
// throughput and round-trip latency percentiles (and UDP loss) as a table or one JSON object.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "client.hpp"
#include "netloop/event_loop.hpp"
#include "options.hpp"

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

void print_table(const LoadClient& client, const LoadOptions& opt, const Summary& s) {
  const Tally& t = client.tally();
  std::printf("netloop-load: tcp-echo %s, %zu-byte messages, pipeline %zu, %.2f s measured",
              opt.target.to_string().c_str(), opt.size, opt.pipeline, s.seconds);
  if (opt.warmup > 0) std::printf(" after %.2f s warm-up", opt.warmup);
  std::printf("\n");
  std::printf("  messages/s     %.1f  (%llu round trips)\n", s.messages_per_s,
              static_cast<unsigned long long>(t.messages));
  std::printf("  MB/s           %.2f  (echoed payload, one direction, 10^6 bytes)\n", s.mb_per_s);
  std::printf("  latency (us)   p50 %.1f   p99 %.1f   p99.9 %.1f   (mean %.1f, min %.1f, max %.1f)\n",
              s.p50_us, s.p99_us, s.p999_us, s.mean_us, s.min_us, s.max_us);
  std::printf("  connections    %zu of %zu\n", client.live_connections(), opt.connections);
  std::printf("  errors         %llu\n", static_cast<unsigned long long>(t.errors));
  std::printf("  mismatches     %llu\n", static_cast<unsigned long long>(t.mismatches));
}

void print_json(const LoadClient& client, const LoadOptions& opt, const Summary& s) {
  const Tally& t = client.tally();
  // The target is a numeric address: nothing in it needs JSON escaping.
  std::printf(
      "{\"scenario\":\"tcp-echo\",\"target\":\"%s\",\"connections\":%zu,\"live_connections\":%zu,"
      "\"size\":%zu,\"pipeline\":%zu,\"duration_s\":%.3f,\"warmup_s\":%.3f,\"measured_s\":%.6f,"
      "\"messages\":%llu,\"total_messages\":%llu,\"messages_per_s\":%.1f,\"mb_per_s\":%.3f,"
      "\"latency_us\":{\"p50\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"mean\":%.2f,\"min\":%.2f,"
      "\"max\":%.2f},\"errors\":%llu,\"mismatches\":%llu,\"interrupted\":%s}\n",
      opt.target.to_string().c_str(), opt.connections, client.live_connections(), opt.size,
      opt.pipeline, opt.duration, opt.warmup, s.seconds,
      static_cast<unsigned long long>(t.messages), static_cast<unsigned long long>(t.total_messages),
      s.messages_per_s, s.mb_per_s, s.p50_us, s.p99_us, s.p999_us, s.mean_us, s.min_us, s.max_us,
      static_cast<unsigned long long>(t.errors), static_cast<unsigned long long>(t.mismatches),
      client.interrupted() ? "true" : "false");
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

  auto client = std::make_unique<LoadClient>(**loop, opt);  // the histogram is ~60 KiB
  if (!client->run(&why)) {
    std::fprintf(stderr, "netloop-load: %s\n", why.c_str());
    return kExitFailed;
  }

  Summary s = summarize(client->latency(), client->measured_seconds(), client->tally().messages,
                        opt.size);
  if (opt.json) print_json(*client, opt, s);
  else print_table(*client, opt, s);
  std::fflush(stdout);

  const Tally& t = client->tally();
  if (client->interrupted()) std::fprintf(stderr, "netloop-load: interrupted; the run is incomplete\n");
  if (t.mismatches)
    std::fprintf(stderr, "netloop-load: %llu echoed message(s) did not match what was sent\n",
                 static_cast<unsigned long long>(t.mismatches));
  if (t.errors)
    std::fprintf(stderr, "netloop-load: %llu connection(s) lost during the run\n",
                 static_cast<unsigned long long>(t.errors));
  return (t.mismatches || t.errors || client->interrupted()) ? kExitFailed : 0;
}
