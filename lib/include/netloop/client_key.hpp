// ClientKey: which client a peer address counts as, for per-client limits: an IPv4
// address, or an IPv6 network of a configurable prefix (a /64 by default, since one
// subscriber is usually handed a whole /64 and can pick any address in it).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "netloop/address.hpp"

namespace netloop {

struct ClientKey {
  // IPv4 as its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so a v4 client and the same client
  // seen through a dual-stack socket share one key. All zeros: not an IP address.
  std::array<uint8_t, 16> bytes{};

  static constexpr int kMinIpv6Prefix = 32;
  static constexpr int kMaxIpv6Prefix = 128;

  // The key of `peer`: IPv4 (and IPv4-mapped IPv6) by the whole address, other IPv6 by its
  // first `ipv6_prefix` bits (clamped to 32..128), the port ignored.
  static ClientKey of(const Address& peer, int ipv6_prefix = 64) noexcept;

  friend bool operator==(const ClientKey&, const ClientKey&) noexcept = default;
};

// Hashes keys with a per-process random seed: a client choosing addresses (any of 2^64 in
// its /48) cannot aim them all at one bucket without knowing the seed.
struct ClientKeyHash {
  size_t operator()(const ClientKey& k) const noexcept;
};

}  // namespace netloop
