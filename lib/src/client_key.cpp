// ClientKey: a peer address reduced to the client it counts as.
#include "netloop/client_key.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <netinet/in.h>
#include <random>

namespace netloop {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

uint64_t mix(uint64_t x) noexcept {  // a 64-bit finalizer: every input bit moves every output bit
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint64_t process_seed() noexcept {
  static const uint64_t seed = []() -> uint64_t {
    try {
      std::random_device rd;
      return (uint64_t(rd()) << 32) ^ rd();
    } catch (...) {  // no entropy source: the clock, which a client cannot know to the ns
      return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) * 0x9e3779b97f4a7c15ULL;
    }
  }();
  return seed;
}

}  // namespace

ClientKey ClientKey::of(const Address& peer, int ipv6_prefix) noexcept {
  ClientKey k;
  if (peer.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(peer.sockaddr_ptr());
    std::memcpy(k.bytes.data(), kMappedPrefix, sizeof kMappedPrefix);
    std::memcpy(k.bytes.data() + 12, &sin->sin_addr, 4);
    return k;
  }
  if (peer.family() != AF_INET6) return k;
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(peer.sockaddr_ptr());
  std::memcpy(k.bytes.data(), &sin6->sin6_addr, 16);
  // An IPv4-mapped address is an IPv4 client: kept whole, as its IPv4 key.
  if (std::memcmp(k.bytes.data(), kMappedPrefix, sizeof kMappedPrefix) == 0) return k;
  int prefix = std::clamp(ipv6_prefix, kMinIpv6Prefix, kMaxIpv6Prefix);
  for (int i = 0; i < 16; ++i) {
    int keep = std::clamp(prefix - 8 * i, 0, 8);
    k.bytes[size_t(i)] &= uint8_t(0xff00u >> keep);
  }
  return k;
}

size_t ClientKeyHash::operator()(const ClientKey& k) const noexcept {
  uint64_t hi, lo;
  std::memcpy(&hi, k.bytes.data(), 8);
  std::memcpy(&lo, k.bytes.data() + 8, 8);
  return size_t(mix(mix(hi ^ process_seed()) ^ lo));
}

}  // namespace netloop
