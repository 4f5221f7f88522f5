// Cidr: strict parsing and matching of the PROXY protocol's trusted networks.
#include "netloop/proxy_protocol_options.hpp"

#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <netinet/in.h>

namespace netloop {
namespace {

template <class T>
Result<T> fail(std::string* why, std::string_view text, std::string_view message) {
  if (why) *why = "'" + std::string(text) + "': " + std::string(message);
  return std::error_code(EINVAL, std::generic_category());
}

// The address bytes of an IPv4 or IPv6 socket address; false for anything else. An
// IPv4-mapped IPv6 address gives its IPv4 form.
bool address_bytes(const Address& a, int& family, std::array<uint8_t, 16>& out) noexcept {
  out = {};
  if (a.family() == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(a.sockaddr_ptr());
    std::memcpy(out.data(), &sin->sin_addr, 4);
    family = AF_INET;
    return true;
  }
  if (a.family() == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(a.sockaddr_ptr());
    const auto* b = reinterpret_cast<const uint8_t*>(&sin6->sin6_addr);
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, kMapped, 12) == 0) {
      std::memcpy(out.data(), b + 12, 4);
      family = AF_INET;
      return true;
    }
    std::memcpy(out.data(), b, 16);
    family = AF_INET6;
    return true;
  }
  return false;
}

}  // namespace

Result<Cidr> Cidr::parse(std::string_view text, std::string* why) {
  if (text.empty()) return fail<Cidr>(why, text, "empty network (expected e.g. 10.0.0.0/8)");
  auto slash = text.find('/');
  std::string host(text.substr(0, slash));
  Cidr c;
  if (::inet_pton(AF_INET, host.c_str(), c.bytes_.data()) == 1) {
    c.family_ = AF_INET;
  } else if (::inet_pton(AF_INET6, host.c_str(), c.bytes_.data()) == 1) {
    c.family_ = AF_INET6;
  } else {
    return fail<Cidr>(why, text,
                      "'" + host + "' is not a numeric IPv4 or IPv6 address (expected e.g. "
                      "10.0.0.0/8 or fd00::/8)");
  }
  const unsigned max = c.family_ == AF_INET ? 32 : 128;
  c.prefix_ = max;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
        (digits.size() > 1 && digits.front() == '0') || value > max)
      return fail<Cidr>(why, text,
                        "prefix length '" + std::string(digits) + "' is not a number from 0 to " +
                            std::to_string(max));
    c.prefix_ = value;
  }
  // Host bits past the prefix: "10.0.0.1/8" is more likely a typo than a wish for 10/8.
  for (unsigned bit = c.prefix_; bit < max; ++bit)
    if (c.bytes_[bit / 8] & (0x80u >> (bit % 8)))
      return fail<Cidr>(why, text, "address bits are set past the /" + std::to_string(c.prefix_) +
                                       " prefix (give the network address)");
  return c;
}

Result<std::vector<Cidr>> Cidr::parse_list(std::string_view text, std::string* why) {
  std::vector<Cidr> out;
  for (;;) {
    auto comma = text.find(',');
    auto item = text.substr(0, comma);
    auto c = parse(item, why);
    if (!c) return c.error();
    out.push_back(*c);
    if (comma == std::string_view::npos) return out;
    text.remove_prefix(comma + 1);
  }
}

bool Cidr::contains(const Address& address) const noexcept {
  int family = 0;
  std::array<uint8_t, 16> bytes;
  if (!address_bytes(address, family, bytes) || family != family_) return false;
  unsigned whole = prefix_ / 8;
  if (std::memcmp(bytes.data(), bytes_.data(), whole) != 0) return false;
  unsigned rest = prefix_ % 8;
  if (rest == 0) return true;
  uint8_t mask = uint8_t(0xff00u >> rest);
  return (bytes[whole] & mask) == (bytes_[whole] & mask);
}

std::string Cidr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family_, bytes_.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix_);
}

bool ProxyProtocolOptions::trusts(const Address& peer) const noexcept {
  for (const auto& c : trusted)
    if (c.contains(peer)) return true;
  return false;
}

std::vector<Cidr> ProxyProtocolOptions::loopback_only() {
  return {*Cidr::parse("127.0.0.0/8"), *Cidr::parse("::1/128")};
}

}  // namespace netloop
