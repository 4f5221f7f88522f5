// netloop-load's command line parser.
#include "options.hpp"

#include "netloop/byte_size.hpp"
#include "target.hpp"

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

const char* to_string(RespCommand c) noexcept {
  switch (c) {
    case RespCommand::ping: return "ping";
    case RespCommand::set: return "set";
    case RespCommand::get: return "get";
  }
  return "?";
}

std::string load_usage() {
  return R"(Usage: netloop-load tcp-echo HOST:PORT --connections N --size BYTES --duration SECONDS
                    [--pipeline K] [--warmup SECONDS] [--tls [TLS OPTIONS]] [--json]
       netloop-load udp-echo HOST:PORT --clients N --size BYTES --duration SECONDS
                    [--pipeline K] [--warmup SECONDS] [--loss-timeout SECONDS]
                    [--max-loss FRACTION] [--json]
       netloop-load http URL --connections N --duration SECONDS
                    [--pipeline K | --close] [--warmup SECONDS] [--tls [TLS OPTIONS]] [--json]
       netloop-load resp HOST:PORT --connections N --duration SECONDS
                    [--command ping|set|get] [--size BYTES] [--key NAME]
                    [--pipeline K] [--warmup SECONDS] [--json]

Drives a server from one netloop event loop on one thread. TCP connections are made by
netloop's Connector: a host may be a name (resolved once per connection, off the loop)
or a numeric address.

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

http: every connection sends keep-alive GET requests for the URL's path (HTTP/1.1, with
a Host header and nothing else), K in flight: the first K in one write, then after each
read as many as were answered, again in one write. Responses are framed by Content-Length or chunked
encoding (or the close, after which the connection is made again), counted by status
code, and timed from the write of their request. A response with "Connection: close"
ends its connection (the requests sent after it are dropped) and a new one is made.

resp: every connection sends one Redis command over and over, K in flight, as
redis-cli encodes them (an array of bulk strings): PING, SET KEY VALUE (VALUE is BYTES
'x' bytes) or GET KEY (each connection first sets KEY, unmeasured, so GET finds a value).
Replies are counted by type; error replies are counted, and the first is printed.

Scenario:
  tcp-echo HOST:PORT     a TCP echo server: a name, IPv4 or [IPv6] (e.g. 127.0.0.1:7007)
  udp-echo HOST:PORT     a UDP echo server: numeric IPv4 or [IPv6]
  http URL               an HTTP/1.1 server: http://HOST[:PORT][/PATH], or https://
                         (the same as --tls; port 443 unless given)
  resp HOST:PORT         a server speaking the Redis protocol (e.g. 127.0.0.1:6379)

Load:
  --connections N        tcp-echo, http, resp: concurrent connections (required)
  --clients N            udp-echo: client sockets (required, at most 100000)
  --size BYTES           message size; k and m suffixes allowed (tcp-echo, udp-echo:
                         required; udp-echo: 12 to 65507 bytes, 65527 over IPv6;
                         resp: the value of set and get, default 3)
  --duration SECONDS     measured time, decimals allowed (required)
  --pipeline K           requests (messages) in flight per connection or client
                         (default 1, at most 1024)
  --warmup SECONDS       run this long before measuring (default 0)
  --close                http: send "Connection: close" with every request, so every
                         request is a new connection (with --tls, a handshake each;
                         a resumed one unless --tls-no-resume)
  --command CMD          resp: ping, set or get (default ping)
  --key NAME             resp: the key of set and get (default netloop-load:key)

TLS (tcp-echo and http):
  --tls                  connect over TLS (1.2 or 1.3): the handshake runs after each
                         connect, before the first request, and is not timed
  --tls-ca FILE          trust the CAs in FILE (PEM) instead of the system's store
  --tls-sni NAME         send NAME as SNI and check the certificate against it
                         (default: the target's host; an address is checked against
                         the certificate's IP addresses and sends no SNI)
  --tls-no-verify        do not check the server's certificate or name (benchmarks
                         against a throwaway certificate only)
  --tls-no-resume        a full handshake on every connection: no session is offered
                         again (by default a connection made again resumes the
                         last session)

UDP loss:
  --loss-timeout SECONDS a datagram not echoed this long after its send is lost
                         (default 0.2; "200ms" also reads)
  --max-loss FRACTION    fail when more than this share of the measured window's
                         datagrams is lost: 0.01 or 1% (default 1%)

Output:
  --json                 print one JSON object instead of the table
  --help                 show this help
  --version              show the version

Reports messages (datagrams, requests)/s and the p50/p99/p99.9 round-trip latency in
microseconds; the echo scenarios add MB/s of echoed payload (one direction, 1 MB = 10^6
bytes) and udp-echo the lost count and loss percentage of the measured window; http adds
MB/s received and the count of each status code, resp the count of each reply type.

Exit status: 0 on a clean run; 1 if a connection could not be made, or was reset,
closed early or answered with something that does not parse, or an echoed byte did not
match (udp-echo: if an echo did not match what was sent, nothing was ever echoed, or more
than --max-loss was lost); 2 for bad arguments. An HTTP status such as 404 or a Redis
error reply is an answer, counted, not a failure of the run. http and resp make a
connection again when the server closes one; tcp-echo does not.
)";
}

ParseOutcome parse_load_options(const std::vector<std::string>& args) {
  LoadOptions o;
  auto fail = [](std::string msg) { return ParseOutcome{std::nullopt, std::move(msg)}; };
  std::vector<std::string> positional;
  bool have_connections = false, have_clients = false, have_size = false, have_duration = false;
  bool have_loss_timeout = false, have_max_loss = false, have_command = false, have_key = false;
  bool have_tls_ca = false, have_tls_sni = false, have_tls_no_verify = false, have_tls_no_resume = false;

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

    if (arg == "--help" || arg == "-h" || arg == "--version" || arg == "--json" || arg == "--tls" ||
        arg == "--tls-no-verify" || arg == "--tls-no-resume" || arg == "--close") {
      if (has_inline) return fail(arg + " takes no value");
      if (arg == "--json") o.json = true;
      else if (arg == "--tls") o.tls = true;
      else if (arg == "--close") o.close = true;
      else if (arg == "--tls-no-verify") have_tls_no_verify = true, o.tls_verify = false;
      else if (arg == "--tls-no-resume") have_tls_no_resume = true, o.tls_resume = false;
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
    } else if (arg == "--command") {
      if (!need_value()) return fail("--command needs ping, set or get");
      std::string lower;
      for (char c : value) lower += char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      if (lower == "ping") o.command = RespCommand::ping;
      else if (lower == "set") o.command = RespCommand::set;
      else if (lower == "get") o.command = RespCommand::get;
      else return fail("--command " + value + ": expected ping, set or get");
      have_command = true;
    } else if (arg == "--key") {
      if (!need_value()) return fail("--key needs a name");
      if (value.empty() || value.size() > kMaxRespKey)
        return fail("--key: expected 1 to " + std::to_string(kMaxRespKey) + " characters");
      for (char c : value)
        if (c <= ' ' || c >= 0x7f) return fail("--key " + value + ": printable ASCII without spaces only");
      o.key = value;
      have_key = true;
    } else if (arg == "--tls-ca") {
      if (!need_value()) return fail("--tls-ca needs a file of PEM certificates");
      if (value.empty()) return fail("--tls-ca: empty file name");
      o.tls_ca = value;
      have_tls_ca = true;
    } else if (arg == "--tls-sni") {
      if (!need_value()) return fail("--tls-sni needs a host name");
      if (value.empty() || value.size() > 253) return fail("--tls-sni: expected a host name of 1 to 253 characters");
      for (char c : value) {
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '.' || c == '_'))
          return fail("--tls-sni " + value + ": a host name is letters, digits, '-', '.' and '_'");
      }
      o.tls_sni = value;
      have_tls_sni = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      return fail("unknown option '" + arg + "' (see --help)");
    } else {
      positional.push_back(arg);
    }
  }
  if (o.help || o.version) return {o, {}};

  if (positional.empty())
    return fail("missing scenario: tcp-echo HOST:PORT, udp-echo HOST:PORT, http URL or resp HOST:PORT "
                "(see --help)");
  o.scenario = positional[0];
  const bool udp = o.scenario == "udp-echo";
  const bool tcp = o.scenario == "tcp-echo";
  const bool http = o.scenario == "http";
  const bool resp = o.scenario == "resp";
  if (!udp && !tcp && !http && !resp)
    return fail("unknown scenario '" + o.scenario + "' (expected tcp-echo, udp-echo, http or resp)");
  if (positional.size() < 2)
    return fail(o.scenario + (http ? " needs the URL (e.g. http://127.0.0.1:8080/)"
                                   : " needs the server's HOST:PORT"));
  if (positional.size() > 2) return fail("unexpected argument '" + positional[2] + "'");
  o.target_text = positional[1];
  std::string why;
  if (udp) {
    auto target = Address::parse_numeric(positional[1], &why);
    if (!target) return fail("target " + positional[1] + ": " + why);
    if (target->port() == 0) return fail("target " + positional[1] + ": port 0 cannot be sent to");
    o.target = *target;
  } else if (http) {
    auto url = parse_http_url(positional[1], &why);
    if (!url) return fail("URL " + positional[1] + ": " + why);
    o.host = url->host;
    o.port = url->port;
    if (url->tls) o.tls = true;
    o.path = url->path;
    o.host_header = url->host_header;
  } else {
    auto target = parse_host_port(positional[1], &why);
    if (!target) return fail("target " + positional[1] + ": " + why);
    o.host = target->host;
    o.port = target->port;
  }

  const bool tls_detail = have_tls_ca || have_tls_sni || have_tls_no_verify || have_tls_no_resume;
  if (o.tls && !tcp && !http) return fail("--tls is for tcp-echo and http only");
  if (tls_detail && !o.tls) {
    return fail(std::string(have_tls_ca ? "--tls-ca" : have_tls_sni ? "--tls-sni"
                            : have_tls_no_verify ? "--tls-no-verify" : "--tls-no-resume") +
                " needs --tls (or an https:// URL)");
  }
  if (have_tls_ca && have_tls_no_verify)
    return fail("--tls-ca and --tls-no-verify contradict each other: a CA is only for verifying");
  if (!resp && (have_command || have_key))
    return fail(std::string(have_command ? "--command" : "--key") + " is for resp only");
  if (!udp && (have_loss_timeout || have_max_loss))
    return fail(std::string(have_loss_timeout ? "--loss-timeout" : "--max-loss") + " is for udp-echo only");
  if (udp) {
    if (have_connections) return fail("udp-echo counts --clients, not --connections");
    if (!have_clients) return fail("missing --clients N");
  } else {
    if (have_clients) return fail("--clients is for udp-echo; " + o.scenario + " counts --connections");
    if (!have_connections) return fail("missing --connections N");
  }
  if (o.close && !http) return fail("--close is for http only");
  if (o.close && o.pipeline > 1)
    return fail("--close sends one request per connection: it takes no --pipeline");
  if (http && have_size) return fail("--size is not for http: the server decides how much it sends");
  if ((udp || tcp) && !have_size) return fail("missing --size BYTES");
  if (udp) {
    const size_t max = o.target.is_ipv6() ? kMaxDatagramV6 : kMaxDatagramV4;
    if (o.size < kUdpHeaderBytes || o.size > max)
      return fail("--size " + std::to_string(o.size) + ": a udp-echo datagram holds " +
                  std::to_string(kUdpHeaderBytes) + " to " + std::to_string(max) +
                  " bytes (client id and sequence number come first)");
  }
  if (resp) {
    if (!have_size) o.size = kDefaultRespSize;
    if (!have_key) o.key = kDefaultRespKey;
    if (have_size && o.command == RespCommand::ping)
      return fail("--size is for resp set and get; ping sends no value");
  }
  if (!have_duration) return fail("missing --duration SECONDS");
  return {o, {}};
}

}  // namespace netloop::load
