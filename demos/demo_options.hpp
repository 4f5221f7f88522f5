// netloop-demo's command line: the options every protocol shares, each protocol's
// listeners, and the parse of argv into them (from the option tables).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_options.hpp"
#include "proxy/proxy_options.hpp"
#include "netloop/address.hpp"
#include "netloop/log.hpp"
#include "netloop/proxy_protocol_options.hpp"
#include "netloop/tcp_connection.hpp"
#include "netloop/tls.hpp"
#include "netloop/udp_socket.hpp"

namespace netloop::demo {

struct DemoProtocol;

struct Listener {
  const DemoProtocol* protocol;
  Address address;
};

// The TLS listeners' certificates and handshake limit (--tls-cert, --tls-key,
// --tls-handshake-timeout), shared by --https, --tls-echo and --tls-proxy.
struct DemoTlsOptions {
  // In the order given: the first pair is the default, the others are chosen by SNI.
  std::vector<TlsCertificateFiles> certificates;
  Duration handshake_timeout = seconds(10);
  bool given = false;  // any of the TLS options was given
};

struct DemoOptions {
  std::vector<Listener> listeners;  // in the order given
  size_t threads = 1;
  Duration drain_timeout = seconds(10);
  Duration defer_accept = Duration::zero();  // --defer-accept (ListenerOptions::defer_accept)
  size_t max_connections = 10'000;
  // Per client (an IPv4 address, an IPv6 network of client_ipv6_prefix bits): connections
  // at once (0: no limit) and, for HTTP, requests per second (0: no limit).
  size_t max_connections_per_ip = 0;
  int client_ipv6_prefix = 64;
  double rate_limit = 0;
  size_t rate_burst = 0;  // 0: the rate rounded up (at least 1)
  size_t rate_limit_clients = 65'536;
  http::HttpOptions http_options;
  size_t metrics_max_connections = 8;
  // --tcp-proxy: one route per flag, in order (their listen addresses are in `listeners`
  // too); the timeouts for them all (their water marks are `connection`'s).
  std::vector<proxy::ProxyRoute> proxy_routes;
  // --tls-proxy: the same, with TLS terminated on the listener.
  std::vector<proxy::ProxyRoute> tls_proxy_routes;
  proxy::ProxyOptions proxy_options;
  bool proxy_options_given = false;
  DemoTlsOptions tls;
  // --proxy-protocol and --proxy-trusted; `proxy_protocol` is made from them after parsing.
  bool proxy_protocol_wanted = false;
  std::vector<Cidr> proxy_trusted;
  bool proxy_trusted_given = false;
  Duration proxy_header_timeout = seconds(5);
  bool proxy_header_timeout_given = false;
  std::shared_ptr<const ProxyProtocolOptions> proxy_protocol;
  std::string poller;  // empty: the default backend
  std::string handover_path;  // --handover: empty without it
  LogLevel log_level = LogLevel::info;
  ConnectionOptions connection;
  UdpOptions udp;
  bool low_water_given = false;
  bool list_pollers = false;
  bool help = false;
  bool version = false;

  // The addresses given for one protocol (by its name: "tcp-echo", "http", ...).
  std::vector<Address> addresses(std::string_view protocol) const;
};

struct ParseOutcome {
  std::optional<DemoOptions> options;  // empty when `error` says what is wrong
  std::string error;
};

ParseOutcome parse_demo_options(const std::vector<std::string>& args);
std::string demo_usage();

}  // namespace netloop::demo
