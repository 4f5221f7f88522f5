// Parsing of HOST:PORT and http:// URLs, with messages that say what is wrong.
#include "target.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <initializer_list>

namespace netloop::load {
namespace {

constexpr size_t kMaxHostName = 253;

// Joins pieces: GCC 12 warns (falsely, -Wrestrict) about "literal" + std::string temporaries.
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out += p;
  return out;
}

bool fail(std::string* why, std::string text) {
  if (why) *why = std::move(text);
  return false;
}

bool is_ipv6_literal(std::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return false;
  char buf[INET6_ADDRSTRLEN];
  std::copy(s.begin(), s.end(), buf);
  buf[s.size()] = '\0';
  in6_addr a;
  return ::inet_pton(AF_INET6, buf, &a) == 1;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

// The host of "host:port", "host" or "[v6]..."; on success `rest` is what follows it.
bool parse_host(std::string_view text, std::string& host, std::string_view& rest, std::string* why) {
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return fail(why, "'[' without its ']'");
    std::string_view inside = text.substr(1, close - 1);
    if (!is_ipv6_literal(inside))
      return fail(why, cat({"'", inside, "' in brackets is not an IPv6 address"}));
    host = std::string(inside);
    rest = text.substr(close + 1);
    return true;
  }
  size_t colon = text.find(':');
  std::string_view name = text.substr(0, colon);
  rest = colon == std::string_view::npos ? std::string_view{} : text.substr(colon);
  if (rest.find(':', 1) != std::string_view::npos)
    return fail(why, cat({"an IPv6 address needs brackets: [", text.substr(0, text.rfind(':')), "]",
                          text.substr(text.rfind(':'))}));
  if (name.empty()) return fail(why, "no host");
  if (name.size() > kMaxHostName) return fail(why, "host name longer than 253 characters");
  auto bad = std::find_if_not(name.begin(), name.end(), is_name_char);
  if (bad != name.end())
    return fail(why, cat({"'", std::string_view(&*bad, 1), "' cannot be part of a host name"}));
  host = std::string(name);
  return true;
}

bool parse_port(std::string_view text, uint16_t& port, std::string* why) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    return fail(why, cat({"port '", text, "' is not a number"}));
  if (v == 0) return fail(why, "port 0 cannot be connected to");
  if (v > 65535) return fail(why, cat({"port ", text, " out of range (1 to 65535)"}));
  port = uint16_t(v);
  return true;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool starts_with_nocase(std::string_view s, std::string_view lower_prefix) {
  if (s.size() < lower_prefix.size()) return false;
  for (size_t i = 0; i < lower_prefix.size(); ++i)
    if (lower(s[i]) != lower_prefix[i]) return false;
  return true;
}

}  // namespace

std::string bracketed(std::string_view host) {
  if (host.find(':') != std::string_view::npos) return cat({"[", host, "]"});
  return std::string(host);
}

std::optional<HostPort> parse_host_port(std::string_view text, std::string* why) {
  HostPort out;
  std::string_view rest;
  if (!parse_host(text, out.host, rest, why)) return std::nullopt;
  if (rest.empty() || rest.front() != ':') {
    fail(why, "missing :PORT (e.g. 127.0.0.1:7007)");
    return std::nullopt;
  }
  if (!parse_port(rest.substr(1), out.port, why)) return std::nullopt;
  return out;
}

std::optional<HttpUrl> parse_http_url(std::string_view text, std::string* why) {
  size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) {
    fail(why, "not an http:// URL (e.g. http://127.0.0.1:8080/)");
    return std::nullopt;
  }
  const bool tls = starts_with_nocase(text, "https://");
  if (!tls && !starts_with_nocase(text, "http://")) {
    fail(why, cat({"unsupported scheme '", text.substr(0, scheme_end), "' (only http:// and https://)"}));
    return std::nullopt;
  }
  std::string_view rest = text.substr(tls ? 8 : 7);
  if (size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  size_t path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  std::string_view path = path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
  if (authority.find('@') != std::string_view::npos) {
    fail(why, "user information (user@host) in URLs is not supported");
    return std::nullopt;
  }
  HttpUrl out;
  out.tls = tls;
  out.port = tls ? 443 : 80;
  std::string_view after_host;
  if (!parse_host(authority, out.host, after_host, why)) return std::nullopt;
  if (!after_host.empty()) {
    if (after_host.front() != ':') {
      fail(why, cat({"unexpected '", after_host, "' after the host"}));
      return std::nullopt;
    }
    if (!parse_port(after_host.substr(1), out.port, why)) return std::nullopt;
  }
  for (char c : path) {
    if (c <= ' ' || c >= 0x7f) {
      fail(why, "the path has a space, control or non-ASCII character: percent-encode it");
      return std::nullopt;
    }
  }
  out.path = cat({path.empty() || path.front() == '?' ? "/" : "", path});
  out.host_header = bracketed(out.host);
  if (out.port != (tls ? 443 : 80)) out.host_header += cat({":", std::to_string(out.port)});
  return out;
}

}  // namespace netloop::load
