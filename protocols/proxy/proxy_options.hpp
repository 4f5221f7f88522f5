// The TCP proxy's configuration: where it listens, the upstreams it joins clients to, its
// timeouts, and the parse of "LISTEN=UPSTREAM[,UPSTREAM...]" into them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/clock.hpp"
#include "netloop/result.hpp"
#include "netloop/stream_connection.hpp"
#include "netloop/tls.hpp"

namespace netloop::proxy {

// One upstream: a host (a name, or a numeric address, already parsed) and a port.
struct UpstreamTarget {
  std::string host;               // as given, without the brackets of an IPv6 address
  uint16_t port = 0;
  std::optional<Address> address; // set when `host` is numeric: no lookup per connection
  std::string text;               // as given: "127.0.0.1:6379", "[::1]:80", "db.local:5432"
};

// Parses HOST:PORT, where HOST is a name, an IPv4 address or a bracketed IPv6 address and
// PORT is from 1 to 65535. On failure `why` says what is wrong.
std::optional<UpstreamTarget> parse_upstream(std::string_view text, std::string* why);

// Every upstream a listener may use, at most this many.
constexpr size_t kMaxUpstreams = 64;

struct ProxyRoute {
  Address listen;
  std::vector<UpstreamTarget> upstreams;  // tried round robin; never empty
};

// Parses "LISTEN=UPSTREAM[,UPSTREAM...]" (LISTEN numeric, as every listener of the demo).
std::optional<ProxyRoute> parse_route(std::string_view text, std::string* why);

// Every limit has a default that is safe on the open internet.
struct ProxyOptions {
  // Making one upstream connection, its name's lookup included; the next upstream is
  // tried after it.
  Duration connect_timeout = seconds(5);
  // A pair with no byte moving either way for this long is closed; zero: never.
  Duration idle_timeout = seconds(300);
  // An upstream that failed to connect (refused, unreachable, timed out) is passed over
  // for this long, unless every upstream is.
  Duration retry_after = seconds(5);
  // The upstream connections' water marks and timeouts (the listener's own come from
  // the server).
  ConnectionOptions upstream_connection{};
  // TLS to the upstreams (--upstream-tls), verified against `upstream_ca` (empty: the
  // system's trust store) and the name `upstream_sni` (empty: the upstream's host as
  // given; an address is checked against the certificate's IP addresses). A handshake
  // that fails is a failed connect: counted, and the client tried on the next upstream.
  bool upstream_tls = false;
  std::string upstream_ca{};
  std::string upstream_sni{};
  // Made from the three above before any loop runs; shared by every loop.
  std::shared_ptr<TlsClientContext> upstream_tls_context{};
};

}  // namespace netloop::proxy
