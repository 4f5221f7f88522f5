// How a protocol describes itself to netloop-demo, once: its name and listener flag, its
// own options with their help, its default listener, whether its connections share state
// (loop 0 only) or every loop serves it, and how it is set up on the server. The command
// line, --help, the start-up banner and the Server registrations all come from these.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/rate_limit.hpp"
#include "netloop/server.hpp"
#include "netloop/tls.hpp"
#include "option_table.hpp"
#include "server_metrics.hpp"

namespace netloop::demo {

struct DemoOptions;
struct DemoProtocol;
struct DemoRun;
// `setup` as it is, or, with --proxy-protocol and a service (not the metrics endpoint),
// with PROXY protocol headers expected on the listener (demo_proxy_protocol.cpp).
Server::StreamSetup expect_proxy_headers(const DemoRun& run, const DemoProtocol& protocol,
                                         Server::StreamSetup setup);

// What a protocol's setup works with.
struct DemoRun {
  Server& server;
  const DemoOptions& options;
  MetricsSources& metrics;  // the HTTP counters are added here
  // Run once the server has started (its loops exist, handlers were made).
  std::vector<std::function<void()>> after_start;
  // The TLS server contexts made (one per TLS protocol): reloaded on SIGHUP.
  std::vector<std::pair<std::string, std::shared_ptr<TlsServerContext>>> tls_servers{};
  // --rate-limit: one table for every HTTP and HTTPS listener on every loop, so a client
  // gets the rate whichever loop and listener its requests reach.
  std::shared_ptr<RateLimiter> rate_limiter{};
};

struct DemoProtocol {
  std::string_view name{};        // "http": the banner's word, and the listener flag's
  std::string_view flag{};        // "--http": the listener option, HOST:PORT, repeatable
  std::string_view listen_help{}; // its help line(s)
  // When the listener flag's value says more than HOST:PORT (the proxy's
  // LISTEN=UPSTREAM[,UPSTREAM...]): its form, for --help and the message when it is
  // missing, and its parse, which keeps what the protocol needs in the options, sets the
  // address to listen on and returns what is wrong ("" = nothing). Empty: HOST:PORT.
  std::string_view listen_value{};
  std::function<std::string(DemoOptions&, const std::string& value, Address& listen)>
      parse_listener{};
  std::optional<Address> default_listener{};  // where it listens when no listener is given
  bool shared = false;     // its connections share state: only loop 0 serves it
  bool datagram = false;   // UDP (registered with add_datagram)
  bool is_service = true;  // false for an admin endpoint (metrics): does not replace defaults
  // Its listeners run TLS with the --tls-cert certificates (which it then needs), offering
  // these ALPN names ("http/1.1"; empty: no ALPN).
  bool tls = false;
  std::vector<std::string> alpn{};
  std::string_view options_title{};  // the --help section of its own options
  std::vector<Option> options{};
  // After parsing: what is wrong with the options as a whole ("" = nothing); `listening`
  // says whether this protocol has a listener.
  std::function<std::string(const DemoOptions&, bool listening)> check{};
  // Before the server starts: registers a listener on each of `addresses` (the Server
  // calls back on each loop). Returns what went wrong ("" = nothing).
  std::function<std::string(DemoRun&, const std::vector<Address>& addresses)> setup{};
  // The banner's words after "poller NAME" (", root /srv"); may be empty.
  std::function<std::string(const DemoRun&)> detail{};
  // Words of the banner line of its i-th listener (in the order given) alone, after
  // `detail`'s: for listeners that differ (the proxy's upstreams); may be empty.
  std::function<std::string(const DemoRun&, size_t i)> listener_detail{};

  // For setup: registers one stream listener the way this protocol wants (every loop or
  // loop 0 only).
  void add_stream(DemoRun& run, const Address& address, Server::StreamSetup setup) const {
    run.server.add_stream(std::string(name), address,
                          expect_proxy_headers(run, *this, std::move(setup)),
                          shared ? Loops::first : Loops::every);
  }
  void add_datagram(DemoRun& run, const Address& address, Server::DatagramSetup setup) const {
    run.server.add_datagram(std::string(name), address, std::move(setup),
                            shared ? Loops::first : Loops::every);
  }
};

// Every protocol netloop-demo serves, in the order of its --help and its banner.
const std::vector<const DemoProtocol*>& demo_protocols();
const DemoProtocol* find_protocol(std::string_view name);

}  // namespace netloop::demo
