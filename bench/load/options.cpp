// netloop-load's command line parser.
#include "options.hpp"

#include "netloop/byte_size.hpp"

#include <charconv>
#include <cmath>
#include <string_view>

namespace netloop::load {
namespace {

// "64", or with allow_suffix also "4k", "1m" -> a count (of bytes, connections...).
std::optional<size_t> parse_count(std::string_view s, bool allow_suffix) {
  if (!allow_suffix && !s.empty() && (s.back() < '0' || s.back() > '9')) return std::nullopt;
  return parse_byte_size(s);
}

std::optional<double> parse_seconds(std::string_view s) {
  if (!s.empty() && s.back() == 's') s.remove_suffix(1);  // "5s" reads as 5
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

// "0.2", "0.2s" or "200ms" -> seconds.
std::optional<double> parse_timeout(std::string_view s) {
  if (s.size() > 2 && s.substr(s.size() - 2) == "ms") {
    auto v = parse_seconds(s.substr(0, s.size() - 2));
    if (!v) return std::nullopt;
    return *v / 1000.0;
  }
  return parse_seconds(s);
}

// "0.01" or "1%" -> 0.01.
std::optional<double> parse_fraction(std::string_view s) {
  bool percent = !s.empty() && s.back() == '%';
  if (percent) s.remove_suffix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v))
    return std::nullopt;
  if (percent) v /= 100.0;
  if (v < 0 || v > 1) return std::nullopt;
  return v;
}

}  // namespace

std::string load_usage() {
  return R"(Usage: netloop-load tcp-echo HOST:PORT --connections N --size BYTES --duration SECONDS
                    [--pipeline K] [--warmup SECONDS] [--json]
       netloop-load udp-echo HOST:PORT --clients N --size BYTES --duration SECONDS
                    [--pipeline K] [--warmup SECONDS] [--loss-timeout SECONDS]
                    [--max-loss FRACTION] [--json]

Drives an echo server from one netloop event loop on one thread.

tcp-echo: every connection keeps K messages of BYTES bytes in flight: when the echo of
its oldest message is back in full it records that message's round-trip latency and
sends the next one. Echoed bytes are checked against the per-connection pattern that was
sent.

udp-echo: every client is its own UDP socket (its own port, connected to the server) and
keeps K datagrams of BYTES bytes in flight. Each datagram carries the client's id and a
sequence number (the first 12 bytes) and a payload derived from both, so every echo is
matched to its datagram and checked byte for byte. A datagram not echoed within the loss
timeout is counted lost and its slot is sent again under a new sequence number; an echo
that arrives after that is counted late, not lost twice.

Scenario:
  tcp-echo HOST:PORT     a TCP echo server, numeric IPv4 or [IPv6] (e.g. 127.0.0.1:7007)
  udp-echo HOST:PORT     a UDP echo server

Load:
  --connections N        tcp-echo: concurrent connections (required)
  --clients N            udp-echo: client sockets (required, at most 100000)
  --size BYTES           message size; k and m suffixes allowed (required; udp-echo: 12
                         to 65507 bytes, 65527 over IPv6)
  --duration SECONDS     measured time, decimals allowed (required)
  --pipeline K           messages in flight per connection or client (default 1, at most 1024)
  --warmup SECONDS       run this long before measuring (default 0)

UDP loss:
  --loss-timeout SECONDS a datagram not echoed this long after its send is lost
                         (default 0.2; "200ms" also reads)
  --max-loss FRACTION    fail when more than this share of the measured window's
                         datagrams is lost: 0.01 or 1% (default 1%)

Output:
  --json                 print one JSON object instead of the table
  --help                 show this help
  --version              show the version

Reports messages (datagrams)/s, MB/s of echoed payload (one direction, 1 MB = 10^6
bytes) and the p50/p99/p99.9 round-trip latency in microseconds; udp-echo adds the lost
count and loss percentage of the measured window.

Exit status: 0 on a clean run; 1 if a connection could not connect, was reset or closed
early, or an echoed byte did not match (udp-echo: if an echo did not match what was
sent, nothing was ever echoed, or more than --max-loss was lost); 2 for bad arguments.
)";
}

ParseOutcome parse_load_options(const std::vector<std::string>& args) {
  LoadOptions o;
  auto fail = [](std::string msg) { return ParseOutcome{std::nullopt, std::move(msg)}; };
  std::vector<std::string> positional;
  bool have_connections = false, have_clients = false, have_size = false, have_duration = false;
  bool have_loss_timeout = false, have_max_loss = false;

  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::string value;
    bool has_inline = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    auto need_value = [&]() -> bool {
      if (has_inline) return true;
      if (i + 1 >= args.size()) return false;
      value = args[++i];
      return true;
    };

    if (arg == "--help" || arg == "-h" || arg == "--version" || arg == "--json") {
      if (has_inline) return fail(arg + " takes no value");
      if (arg == "--json") o.json = true;
      else if (arg == "--version") o.version = true;
      else o.help = true;
    } else if (arg == "--connections" || arg == "--pipeline" || arg == "--clients") {
      if (!need_value()) return fail(arg + " needs a number");
      auto v = parse_count(value, false);
      if (!v) return fail(arg + " " + value + ": not a whole number");
      if (arg == "--connections") {
        if (*v < 1 || *v > kMaxConnections)
          return fail("--connections " + value + ": expected 1 to " + std::to_string(kMaxConnections));
        o.connections = *v;
        have_connections = true;
      } else if (arg == "--clients") {
        if (*v < 1 || *v > kMaxUdpClients)
          return fail("--clients " + value + ": expected 1 to " + std::to_string(kMaxUdpClients));
        o.connections = *v;
        have_clients = true;
      } else {
        if (*v < 1 || *v > kMaxPipeline)
          return fail("--pipeline " + value + ": expected 1 to " + std::to_string(kMaxPipeline));
        o.pipeline = *v;
      }
    } else if (arg == "--size") {
      if (!need_value()) return fail("--size needs a byte count");
      auto v = parse_count(value, true);
      if (!v) return fail("--size " + value + ": not a byte count (e.g. 64, 4k, 1m)");
      if (*v < 1 || *v > kMaxMessageSize)
        return fail("--size " + value + ": expected 1 byte to 64m");
      o.size = *v;
      have_size = true;
    } else if (arg == "--duration" || arg == "--warmup") {
      if (!need_value()) return fail(arg + " needs a number of seconds");
      auto v = parse_seconds(value);
      if (!v) return fail(arg + " " + value + ": not a number of seconds");
      if (*v < 0 || *v > kMaxSeconds)
        return fail(arg + " " + value + ": out of range (0 to one week)");
      if (arg == "--duration") {
        if (*v <= 0) return fail("--duration must be more than 0 seconds");
        o.duration = *v;
        have_duration = true;
      } else {
        o.warmup = *v;
      }
    } else if (arg == "--loss-timeout") {
      if (!need_value()) return fail("--loss-timeout needs a number of seconds");
      auto v = parse_timeout(value);
      if (!v) return fail("--loss-timeout " + value + ": not a time (e.g. 0.2, 0.2s, 200ms)");
      if (*v < 0.001 || *v > kMaxLossTimeout)
        return fail("--loss-timeout " + value + ": expected 1 ms to 60 s");
      o.loss_timeout = *v;
      have_loss_timeout = true;
    } else if (arg == "--max-loss") {
      if (!need_value()) return fail("--max-loss needs a fraction (e.g. 0.01 or 1%)");
      auto v = parse_fraction(value);
      if (!v) return fail("--max-loss " + value + ": expected a fraction from 0 to 1, or 0% to 100%");
      o.max_loss = *v;
      have_max_loss = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      return fail("unknown option '" + arg + "' (see --help)");
    } else {
      positional.push_back(arg);
    }
  }
  if (o.help || o.version) return {o, {}};

  if (positional.empty()) return fail("missing scenario: tcp-echo or udp-echo HOST:PORT (see --help)");
  o.scenario = positional[0];
  const bool udp = o.scenario == "udp-echo";
  if (o.scenario != "tcp-echo" && !udp)
    return fail("unknown scenario '" + o.scenario + "' (expected tcp-echo or udp-echo)");
  if (positional.size() < 2) return fail(o.scenario + " needs the server's HOST:PORT");
  if (positional.size() > 2) return fail("unexpected argument '" + positional[2] + "'");
  std::string why;
  auto target = Address::parse_numeric(positional[1], &why);
  if (!target) return fail("target " + positional[1] + ": " + why);
  if (target->port() == 0)
    return fail("target " + positional[1] + ": port 0 cannot be " + (udp ? "sent to" : "connected to"));
  o.target = *target;

  if (udp) {
    if (have_connections) return fail("udp-echo counts --clients, not --connections");
    if (!have_clients) return fail("missing --clients N");
  } else {
    if (have_clients) return fail("--clients is for udp-echo; tcp-echo counts --connections");
    if (have_loss_timeout || have_max_loss)
      return fail(std::string(have_loss_timeout ? "--loss-timeout" : "--max-loss") +
                  " is for udp-echo only");
    if (!have_connections) return fail("missing --connections N");
  }
  if (!have_size) return fail("missing --size BYTES");
  if (udp) {
    const size_t max = o.target.is_ipv6() ? kMaxDatagramV6 : kMaxDatagramV4;
    if (o.size < kUdpHeaderBytes || o.size > max)
      return fail("--size " + std::to_string(o.size) + ": a udp-echo datagram holds " +
                  std::to_string(kUdpHeaderBytes) + " to " + std::to_string(max) +
                  " bytes (client id and sequence number come first)");
  }
  if (!have_duration) return fail("missing --duration SECONDS");
  return {o, {}};
}

}  // namespace netloop::load
