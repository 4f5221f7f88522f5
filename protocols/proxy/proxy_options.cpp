// Parsing the proxy's routes: LISTEN=UPSTREAM[,UPSTREAM...].
#include "proxy/proxy_options.hpp"

#include <charconv>

namespace netloop::proxy {
namespace {

bool fail(std::string* why, std::string text) {
  if (why) *why = std::move(text);
  return false;
}

// Letters, digits, '-', '_' and '.': what a host name (or an IPv4 address) is made of.
bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

bool split_host_port(std::string_view text, std::string_view& host, std::string_view& port,
                     std::string* why) {
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return fail(why, "missing ']' after an IPv6 address");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':')
      return fail(why, "expected :PORT after the ']'");
    port = text.substr(close + 2);
    if (host.empty()) return fail(why, "empty IPv6 address");
    return true;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return fail(why, "expected HOST:PORT");
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  if (host.find(':') != std::string_view::npos)
    return fail(why, "an IPv6 address goes in brackets: [::1]:PORT");
  if (host.empty()) return fail(why, "missing host before ':'");
  return true;
}

}  // namespace

std::optional<UpstreamTarget> parse_upstream(std::string_view text, std::string* why) {
  std::string_view host, port_text;
  if (!split_host_port(text, host, port_text, why)) return std::nullopt;
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port == 0 || port > 65535) {
    fail(why, "port '" + std::string(port_text) + "': expected a number from 1 to 65535");
    return std::nullopt;
  }
  UpstreamTarget t;
  t.host = std::string(host);
  t.port = uint16_t(port);
  t.text = std::string(text);
  if (auto a = Address::parse_numeric(text)) {
    t.address = *a;
    return t;
  }
  bool bracketed = text.front() == '[';
  if (bracketed) {
    fail(why, "'" + std::string(host) + "' is not an IPv6 address");
    return std::nullopt;
  }
  if (host.size() > 253) {
    fail(why, "host name longer than 253 characters");
    return std::nullopt;
  }
  for (char c : host) {
    if (!name_char(c)) {
      std::string text(host);
      fail(why, "'" + text + "' is not a host name or address");
      return std::nullopt;
    }
  }
  return t;
}

std::optional<ProxyRoute> parse_route(std::string_view text, std::string* why) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    fail(why, "expected LISTEN=UPSTREAM[,UPSTREAM...], e.g. 127.0.0.1:6380=127.0.0.1:6379");
    return std::nullopt;
  }
  std::string reason;
  auto listen = Address::parse_numeric(text.substr(0, eq), &reason);
  if (!listen) {
    fail(why, "listen address '" + std::string(text.substr(0, eq)) + "': " + reason);
    return std::nullopt;
  }
  ProxyRoute route{*listen, {}};
  std::string_view rest = text.substr(eq + 1);
  if (rest.empty()) {
    fail(why, "no upstream after '='");
    return std::nullopt;
  }
  for (;;) {
    size_t comma = rest.find(',');
    std::string_view one = rest.substr(0, comma);
    if (one.empty()) {
      fail(why, "an empty upstream in the list");
      return std::nullopt;
    }
    auto t = parse_upstream(one, &reason);
    if (!t) {
      fail(why, "upstream '" + std::string(one) + "': " + reason);
      return std::nullopt;
    }
    route.upstreams.push_back(std::move(*t));
    if (route.upstreams.size() > kMaxUpstreams) {
      fail(why, "more than " + std::to_string(kMaxUpstreams) + " upstreams");
      return std::nullopt;
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return route;
}

}  // namespace netloop::proxy
