// Where netloop-load sends its load: HOST:PORT and http:// URLs, parsed and checked
// (no name is resolved here: the Connector does that when it connects).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace netloop::load {

struct HostPort {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without its brackets
  uint16_t port = 0;
};

struct HttpUrl {
  std::string host;         // as in HostPort
  uint16_t port = 80;       // 443 for https
  bool tls = false;         // https://: the requests go over TLS
  std::string path;         // what the request line asks for: "/", "/a/b?q=1"
  std::string host_header;  // the Host header's value: "host", "host:8080", "[::1]:8080"
};

// "host:80", "127.0.0.1:80", "[::1]:80". A host name is letters, digits, '-', '.' and '_'
// (at most 253 of them). Port 1 to 65535.
std::optional<HostPort> parse_host_port(std::string_view text, std::string* why);

// "http://host[:port][/path][?query]" or the same with https (any case), nothing else;
// no user information; a fragment is dropped (it is never sent); the path and query go
// out as they are, so they must be printable ASCII without spaces (percent-encode the
// rest). An empty path is "/".
std::optional<HttpUrl> parse_http_url(std::string_view text, std::string* why);

// `host` as it is written in a URL or HOST:PORT: an IPv6 address in brackets.
std::string bracketed(std::string_view host);

}  // namespace netloop::load
