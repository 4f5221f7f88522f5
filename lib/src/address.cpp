// Address: parsing and printing of IPv4/IPv6 socket addresses.
#include "netloop/address.hpp"

#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <netinet/in.h>

namespace netloop {
namespace {

Result<Address> fail(std::string* why, std::string message) {
  if (why) *why = std::move(message);
  return make_error(EINVAL);
}

}  // namespace

Address::Address() noexcept {
  std::memset(&storage_, 0, sizeof storage_);
  storage_.ss_family = AF_UNSPEC;
}

Result<Address> Address::parse_numeric(std::string_view text, std::string* why) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return fail(why, "missing ']' after IPv6 address");
    host = text.substr(1, close - 1);
    auto rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return fail(why, "expected ':PORT' after ']'");
    port = rest.substr(1);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail(why, "expected HOST:PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return fail(why, "IPv6 addresses go in brackets: [::1]:PORT");
  }
  if (host.empty()) return fail(why, "missing host");
  if (port.empty()) return fail(why, "missing port");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  bool digits_only = end == port.data() + port.size();
  if (ec == std::errc::invalid_argument || !digits_only)
    return fail(why, "port '" + std::string(port) + "' is not a number");
  if (ec == std::errc::result_out_of_range || value > 65535) return fail(why, "port " + std::string(port) + " out of range (0-65535)");

  std::string h(host);
  if (h == "localhost") h = "127.0.0.1";
  Address a;
  if (text.front() != '[') {
    auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage_);
    if (::inet_pton(AF_INET, h.c_str(), &sin->sin_addr) == 1) {
      sin->sin_family = AF_INET;
      sin->sin_port = htons(uint16_t(value));
      return a;
    }
    return fail(why, "'" + h + "' is not a numeric IPv4 address (names are not resolved)");
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (::inet_pton(AF_INET6, h.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(uint16_t(value));
    return a;
  }
  return fail(why, "'" + h + "' is not a numeric IPv6 address");
}

Address Address::from_sockaddr(const sockaddr* sa, socklen_t len) noexcept {
  Address a;
  if (sa && len > 0 && size_t(len) <= sizeof a.storage_) std::memcpy(&a.storage_, sa, len);
  return a;
}

Address Address::local_of(int fd, const Address& otherwise) noexcept {
  Address a;
  socklen_t len = sizeof a.storage_;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage_), &len) < 0) return otherwise;
  return a;
}

Address Address::ipv4_loopback(uint16_t port) noexcept {
  Address a;
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage_);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin->sin_port = htons(port);
  return a;
}

Address Address::ipv6_loopback(uint16_t port) noexcept {
  Address a;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_addr = in6addr_loopback;
  sin6->sin6_port = htons(port);
  return a;
}

uint16_t Address::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

void Address::set_port(uint16_t port) noexcept {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
}

socklen_t Address::length() const noexcept {
  if (family() == AF_INET) return sizeof(sockaddr_in);
  if (family() == AF_INET6) return sizeof(sockaddr_in6);
  return sizeof storage_;
}

std::string Address::host() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
  else if (family() == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
                sizeof buf);
  else
    return "-";
  return buf;
}

std::string Address::to_string() const {
  if (family() != AF_INET && family() != AF_INET6) return "-";
  std::string out;
  out.reserve(INET6_ADDRSTRLEN + 8);
  if (family() == AF_INET6) out += '[';
  out += host();
  if (family() == AF_INET6) out += ']';
  out += ':';
  out += std::to_string(port());
  return out;
}

bool operator==(const Address& a, const Address& b) noexcept {
  if (a.family() != b.family()) return false;
  if (a.family() == AF_INET) {
    auto* x = reinterpret_cast<const sockaddr_in*>(&a.storage_);
    auto* y = reinterpret_cast<const sockaddr_in*>(&b.storage_);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.family() == AF_INET6) {
    auto* x = reinterpret_cast<const sockaddr_in6*>(&a.storage_);
    auto* y = reinterpret_cast<const sockaddr_in6*>(&b.storage_);
    return x->sin6_port == y->sin6_port &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0 &&
           x->sin6_scope_id == y->sin6_scope_id;
  }
  return true;
}

}  // namespace netloop
