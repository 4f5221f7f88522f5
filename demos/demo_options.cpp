// netloop-demo's command line parser.
#include "demo_options.hpp"

#include "netloop/byte_size.hpp"

#include <charconv>
#include <chrono>

namespace netloop::demo {

std::string demo_usage() {
  return R"(Usage: netloop-demo [OPTIONS]

Serves the built-in protocols from one event loop. With no listener options it serves
TCP and UDP echo on 127.0.0.1:7007 and HTTP on 127.0.0.1:8080 (the built-in page).

Listeners (repeatable):
  --tcp-echo HOST:PORT   TCP echo (RFC 862), e.g. 127.0.0.1:7007 or [::1]:7007
  --udp-echo HOST:PORT   UDP echo (RFC 862): each datagram goes back whole to its sender
  --http HOST:PORT       HTTP/1.1 GET and HEAD, e.g. 127.0.0.1:8080
  --chat HOST:PORT       example: a line-based chat room (all --chat listeners share it)
  --kv HOST:PORT         example: a key-value store speaking a Redis subset (PING, SET,
                         GET, DEL, ...), for redis-cli and redis-benchmark

HTTP:
  --root DIR             directory to serve (default: a built-in page); index.html for
                         directories, symlinks followed only while they stay inside DIR
  --header-timeout SECS  a request must arrive whole within this long of its first byte,
                         else 408 and close (default 10)
  --keepalive-timeout SECS  idle time allowed between requests (default 30)
  --max-request-line BYTES  longer request lines get 414 (default 8k)
  --max-header-bytes BYTES  larger request heads get 431 (default 16k)
  --cache-control VALUE  add "Cache-Control: VALUE" to file responses (200, 206, 304)
  --no-precompressed     do not serve FILE.br or FILE.gz in place of FILE; by default a
                         sibling not older than FILE is served to clients whose
                         Accept-Encoding takes it (--precompressed: the default)
  --dotfiles             serve paths with a segment starting with '.' (default: 404,
                         but for /.well-known/)

Reactor:
  --threads N            event loops, one thread each, every one with its own listeners
                         (SO_REUSEPORT); chat and kv stay on the first (default 1)
  --poller NAME          poller backend (see --list-pollers); default: the best available
  --list-pollers         list poller backends and whether this build and kernel can use them
  --drain-timeout SECS   on SIGTERM/SIGINT stop accepting, let requests in flight finish,
                         close idle connections; exit within this long (default 10); a
                         second signal exits at once
  --max-connections N    connections open at once across all listeners; past it new ones
                         are refused at once (HTTP: 503) and counted (default 10000)

Observability:
  --metrics HOST:PORT    serve counters for Prometheus at http://HOST:PORT/metrics
  --metrics-max-connections N  connections to the metrics endpoint at once; past it a
                         503 (default 8; outside --max-connections)
  --access-log           one log line per HTTP response
  SIGUSR1                logs a one-line summary of the counters

Limits:
  --high-water BYTES     unsent bytes per connection that pause reading (default 256k)
  --low-water BYTES      unsent bytes at which reading resumes (default 64k)
  --max-input BYTES      unconsumed input per connection before it is closed (default 1m)
  --write-timeout SECS   buffered output making no progress this long resets the connection
                         (default 60; 0 disables)
  --udp-batch N          datagrams per recvmmsg/sendmmsg call (default 32, 1-1024); each
                         socket keeps N x --udp-max-datagram bytes of receive room
  --udp-max-datagram BYTES  largest datagram received whole; larger ones are dropped and
                         counted, never echoed truncated (default 65535)

Other:
  --log-level LEVEL      debug, info, warn, error or off (default info)
  --help                 show this help
  --version              show the version

SIGINT or SIGTERM drains the server and exits 0 (a second one exits at once). Bad
options or a listener that cannot bind exit with code 2.
)";
}

namespace {

// Seconds as a decimal number from 0 to 86400, e.g. "60" or "0.5".
std::optional<Duration> parse_seconds(const std::string& v) {
  double secs = -1;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), secs);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || !(secs >= 0) || secs > 86400)
    return std::nullopt;
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(secs));
}

}  // namespace

ParseOutcome parse_demo_options(const std::vector<std::string>& args) {
  DemoOptions o;
  bool low_given = false;
  bool root_given = false;
  auto fail = [](std::string msg) { return ParseOutcome{std::nullopt, std::move(msg)}; };
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::string value;
    bool has_inline = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    auto need_value = [&](std::string& out) -> bool {
      if (has_inline) { out = value; return true; }
      if (i + 1 >= args.size()) return false;
      out = args[++i];
      return true;
    };
    auto flag_only = [&] { return !has_inline; };

    if (arg == "--help" || arg == "-h") {
      if (!flag_only()) return fail(arg + " takes no value");
      o.help = true;
    } else if (arg == "--version") {
      if (!flag_only()) return fail(arg + " takes no value");
      o.version = true;
    } else if (arg == "--list-pollers") {
      if (!flag_only()) return fail(arg + " takes no value");
      o.list_pollers = true;
    } else if (arg == "--tcp-echo") {
      std::string v, why;
      if (!need_value(v)) return fail("--tcp-echo needs HOST:PORT");
      auto a = Address::parse(v, &why);
      if (!a) return fail("--tcp-echo " + v + ": " + why);
      o.tcp_echo.push_back(*a);
    } else if (arg == "--http") {
      std::string v, why;
      if (!need_value(v)) return fail("--http needs HOST:PORT");
      auto a = Address::parse(v, &why);
      if (!a) return fail("--http " + v + ": " + why);
      o.http.push_back(*a);
    } else if (arg == "--metrics") {
      std::string v, why;
      if (!need_value(v)) return fail("--metrics needs HOST:PORT");
      auto a = Address::parse(v, &why);
      if (!a) return fail("--metrics " + v + ": " + why);
      o.metrics = *a;
    } else if (arg == "--access-log") {
      if (!flag_only()) return fail(arg + " takes no value");
      o.http_options.access_log = true;
    } else if (arg == "--dotfiles" || arg == "--precompressed" || arg == "--no-precompressed") {
      if (!flag_only()) return fail(arg + " takes no value");
      if (arg == "--dotfiles") o.http_options.dotfiles = true;
      else o.http_options.precompressed = arg == "--precompressed";
    } else if (arg == "--cache-control") {
      std::string v;
      if (!need_value(v) || v.empty()) return fail("--cache-control needs a value, e.g. 'max-age=3600'");
      for (char c : v)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          return fail("--cache-control: control characters are not allowed in a header value");
      o.http_options.cache_control = v;
    } else if (arg == "--threads" || arg == "--max-connections" ||
               arg == "--metrics-max-connections") {
      std::string v;
      if (!need_value(v)) return fail(arg + " needs a number");
      size_t n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      size_t max = arg == "--threads" ? 256 : arg == "--max-connections" ? 10'000'000 : 1000;
      if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < 1 || n > max)
        return fail(arg + " " + v + ": expected a whole number from 1 to " + std::to_string(max));
      if (arg == "--threads") o.threads = n;
      else if (arg == "--max-connections") o.max_connections = n;
      else o.metrics_max_connections = n;
    } else if (arg == "--chat" || arg == "--kv") {
      std::string v, why;
      if (!need_value(v)) return fail(arg + " needs HOST:PORT");
      auto a = Address::parse(v, &why);
      if (!a) return fail(arg + " " + v + ": " + why);
      (arg == "--chat" ? o.chat : o.kv).push_back(*a);
    } else if (arg == "--root") {
      if (!need_value(o.http_options.root) || o.http_options.root.empty())
        return fail("--root needs a directory");
      root_given = true;
    } else if (arg == "--write-timeout" || arg == "--header-timeout" ||
               arg == "--keepalive-timeout" || arg == "--drain-timeout") {
      std::string v;
      if (!need_value(v)) return fail(arg + " needs a number of seconds");
      auto d = parse_seconds(v);
      bool zero_ok = arg == "--write-timeout";
      if (!d || (!zero_ok && *d <= Duration::zero()))
        return fail(arg + " " + v + ": expected seconds from " + (zero_ok ? "0" : "above 0") +
                    " to 86400, e.g. 60 or 0.5");
      if (arg == "--write-timeout") o.connection.write_timeout = *d;
      if (arg == "--header-timeout") o.http_options.header_timeout = *d;
      if (arg == "--keepalive-timeout") o.http_options.keepalive_timeout = *d;
      if (arg == "--drain-timeout") o.drain_timeout = *d;
    } else if (arg == "--max-request-line" || arg == "--max-header-bytes") {
      std::string v;
      if (!need_value(v)) return fail(arg + " needs a size in bytes");
      auto n = parse_byte_size(v);
      if (!n || *n < 64 || *n > 1024 * 1024)
        return fail(arg + " " + v + ": expected a size from 64 to 1m, such as 8k");
      if (arg == "--max-request-line") o.http_options.limits.max_request_line = *n;
      else o.http_options.limits.max_head_bytes = *n;
    } else if (arg == "--udp-echo") {
      std::string v, why;
      if (!need_value(v)) return fail("--udp-echo needs HOST:PORT");
      auto a = Address::parse(v, &why);
      if (!a) return fail("--udp-echo " + v + ": " + why);
      o.udp_echo.push_back(*a);
    } else if (arg == "--udp-batch") {
      std::string v;
      if (!need_value(v)) return fail("--udp-batch needs a count");
      auto n = parse_byte_size(v);
      if (!n || *n == 0 || *n > 1024 || v.back() < '0' || v.back() > '9')
        return fail("--udp-batch " + v + ": expected a count from 1 to 1024");
      o.udp.batch = *n;
    } else if (arg == "--udp-max-datagram") {
      std::string v;
      if (!need_value(v)) return fail("--udp-max-datagram needs a size in bytes");
      auto n = parse_byte_size(v);
      if (!n || *n == 0 || *n > 65535)
        return fail("--udp-max-datagram " + v + ": expected a size from 1 to 65535");
      o.udp.max_datagram = *n;
    } else if (arg == "--poller") {
      if (!need_value(o.poller) || o.poller.empty()) return fail("--poller needs a backend name");
    } else if (arg == "--log-level") {
      std::string v;
      if (!need_value(v)) return fail("--log-level needs a level");
      auto lvl = parse_log_level(v);
      if (!lvl) return fail("--log-level " + v + ": expected debug, info, warn, error or off");
      o.log_level = *lvl;
    } else if (arg == "--high-water" || arg == "--low-water" || arg == "--max-input") {
      std::string v;
      if (!need_value(v)) return fail(arg + " needs a size in bytes");
      auto n = parse_byte_size(v);
      if (!n || *n == 0) return fail(arg + " " + v + ": expected a positive size such as 65536, 64k or 1m");
      if (arg == "--high-water") o.connection.high_water = *n;
      if (arg == "--low-water") o.connection.low_water = *n, low_given = true;
      if (arg == "--max-input") o.connection.max_input = *n;
    } else {
      return fail("unknown option '" + args[i] + "' (see --help)");
    }
  }
  if (o.connection.low_water > o.connection.high_water) {
    if (low_given) return fail("--low-water must not exceed --high-water");
    o.connection.low_water = o.connection.high_water / 4;  // only --high-water was lowered
  }
  if (o.http_options.limits.max_request_line > o.http_options.limits.max_head_bytes)
    return fail("--max-request-line must not exceed --max-header-bytes (the head includes it)");
  if (o.tcp_echo.empty() && o.udp_echo.empty() && o.http.empty() && o.chat.empty() &&
      o.kv.empty()) {
    o.tcp_echo.push_back(Address::ipv4_loopback(7007));
    o.udp_echo.push_back(Address::ipv4_loopback(7007));
    o.http.push_back(Address::ipv4_loopback(8080));
  } else if (root_given && o.http.empty()) {
    return fail("--root applies to HTTP listeners: add --http HOST:PORT");
  }
  return {std::move(o), {}};
}

}  // namespace netloop::demo
