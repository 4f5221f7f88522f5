// netloop-demo's HTTP/1.1 GET/HEAD responder: every loop serves it with a responder (file
// cache and counters) of its own.
#include <memory>

#include "demo_options.hpp"
#include "demo_protocol.hpp"
#include "demo_tls.hpp"
#include "http/http_handler.hpp"
#include "http/http_responder.hpp"
#include "netloop/byte_size.hpp"

namespace netloop::demo {
namespace {

std::string http_limit(std::string_view name, const std::string& v, size_t& out) {
  auto n = parse_byte_size(v);
  if (!n || *n < 64 || *n > 1024 * 1024)
    return std::string(name) + " " + v + ": expected a size from 64 to 1m, such as 8k";
  out = *n;
  return {};
}

std::string set_flag(bool& field, bool value) {
  field = value;
  return {};
}

// One responder per loop, made on the loop's first use; kept for the counters and the banner.
using Responders = std::vector<std::shared_ptr<http::HttpResponder>>;

// Registers `protocol`'s listeners (HTTP, or HTTPS when it is a TLS protocol).
std::string setup_http(DemoRun& run, const DemoProtocol& protocol,
                       const std::vector<Address>& addresses) {
  const http::HttpOptions& ho = run.options.http_options;
  // The root is checked once, before any loop exists, so a bad --root is one clear
  // message rather than N identical failures.
  if (!ho.root.empty()) {
    if (auto probe = http::HttpResponder::create(ho); !probe)
      return "--root " + ho.root + ": " + probe.error().message();
  }
  std::shared_ptr<TlsServerContext> tls;
  if (protocol.tls)
    if (std::string why = make_tls_server(run, protocol, tls); !why.empty()) return why;
  const DemoOptions& o = run.options;
  if (o.rate_limit > 0 && !run.rate_limiter)
    run.rate_limiter = std::make_shared<RateLimiter>(
        RateLimitConfig{o.rate_limit, double(o.rate_burst)}, o.rate_limit_clients,
        o.client_ipv6_prefix);
  // The metrics endpoint copies the options too, but is never rate limited: only these get
  // the limiter.
  auto served = std::make_shared<http::HttpOptions>(ho);
  served->rate_limiter = run.rate_limiter;
  auto responders = std::make_shared<Responders>(run.options.threads);
  for (const auto& a : addresses)
    protocol.add_stream(run, a, [served, responders, tls](EventLoop&, size_t i) {
      auto& r = (*responders)[i];
      if (!r) r = *http::HttpResponder::create(*served);  // the root was checked
      return StreamService{.factory = r->factory(), .refusal_factory = http::refusal_factory(r),
                           .tls = tls};
    });
  run.after_start.push_back([&run, responders] {
    for (const auto& r : *responders)
      if (r) run.metrics.http.push_back(&r->stats());
  });
  return {};
}

std::string root_detail(const DemoRun& run) {
  const std::string& root = run.options.http_options.root;
  if (root.empty()) return ", built-in page";
  auto r = http::HttpResponder::create(run.options.http_options);
  return ", root " + (r ? (*r)->root_path() : root);
}

}  // namespace

const DemoProtocol& https_protocol() {
  static const DemoProtocol p{
      .name = "https",
      .flag = "--https",
      .listen_help = "HTTP/1.1 over TLS (ALPN http/1.1, never h2), the --http options\n"
                     "and the --tls-cert certificates, e.g. 127.0.0.1:8443",
      .tls = true,
      .alpn = {"http/1.1"},
      .setup = [](DemoRun& run, const std::vector<Address>& addresses) {
        return setup_http(run, https_protocol(), addresses);
      },
      .detail = [](const DemoRun& run) -> std::string {
        return root_detail(run) + tls_banner_detail(run, https_protocol());
      },
  };
  return p;
}

const DemoProtocol& http_protocol() {
  static const DemoProtocol p{
      .name = "http",
      .flag = "--http",
      .listen_help = "HTTP/1.1 GET and HEAD, e.g. 127.0.0.1:8080",
      .default_listener = Address::ipv4_loopback(8080),
      .options_title = "HTTP",
      .options =
          {
              {"--root", "DIR", "a directory",
               "directory to serve (default: a built-in page); index.html for\n"
               "directories, symlinks followed only while they stay inside DIR",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (v.empty()) return "--root needs a directory";
                 o.http_options.root = v;
                 return {};
               }},
              {"--header-timeout", "SECS", "a number of seconds",
               "a request must arrive whole within this long of its first byte,\n"
               "else 408 and close (default 10)",
               [](DemoOptions& o, const std::string& v) {
                 return parse_timeout("--header-timeout", v, false, o.http_options.header_timeout);
               }},
              {"--keepalive-timeout", "SECS", "a number of seconds",
               "idle time allowed between requests (default 30)",
               [](DemoOptions& o, const std::string& v) {
                 return parse_timeout("--keepalive-timeout", v, false,
                                      o.http_options.keepalive_timeout);
               }},
              {"--max-request-line", "BYTES", "a size in bytes",
               "longer request lines get 414 (default 8k)",
               [](DemoOptions& o, const std::string& v) {
                 return http_limit("--max-request-line", v, o.http_options.limits.max_request_line);
               }},
              {"--max-header-bytes", "BYTES", "a size in bytes",
               "larger request heads get 431 (default 16k)",
               [](DemoOptions& o, const std::string& v) {
                 return http_limit("--max-header-bytes", v, o.http_options.limits.max_head_bytes);
               }},
              {"--cache-control", "VALUE", "a value, e.g. 'max-age=3600'",
               "add \"Cache-Control: VALUE\" to file responses (200, 206, 304)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (v.empty()) return "--cache-control needs a value, e.g. 'max-age=3600'";
                 for (char c : v)
                   if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                     return "--cache-control: control characters are not allowed in a header value";
                 o.http_options.cache_control = v;
                 return {};
               }},
              {"--no-precompressed", "", "",
               "do not serve FILE.br or FILE.gz in place of FILE; by default a\n"
               "sibling not older than FILE is served to clients whose\n"
               "Accept-Encoding takes it (--precompressed: the default)",
               [](DemoOptions& o, const std::string&) {
                 return set_flag(o.http_options.precompressed, false);
               }},
              {"--precompressed", "", "", "serve precompressed siblings (the default)",
               [](DemoOptions& o, const std::string&) {
                 return set_flag(o.http_options.precompressed, true);
               }},
              {"--dotfiles", "", "",
               "serve paths with a segment starting with '.' (default: 404,\n"
               "but for /.well-known/)",
               [](DemoOptions& o, const std::string&) { return set_flag(o.http_options.dotfiles, true); }},
              {"--access-log", "", "", "one log line per HTTP response",
               [](DemoOptions& o, const std::string&) {
                 return set_flag(o.http_options.access_log, true);
               }},
          },
      .check = [](const DemoOptions& o, bool listening) -> std::string {
        if (o.http_options.limits.max_request_line > o.http_options.limits.max_head_bytes)
          return "--max-request-line must not exceed --max-header-bytes (the head includes it)";
        if (!o.http_options.root.empty() && !listening && o.addresses("https").empty())
          return "--root applies to HTTP listeners: add --http or --https HOST:PORT";
        return {};
      },
      .setup = [](DemoRun& run, const std::vector<Address>& addresses) {
        return setup_http(run, http_protocol(), addresses);
      },
      .detail = [](const DemoRun& run) { return root_detail(run); },
  };
  return p;
}

}  // namespace netloop::demo
