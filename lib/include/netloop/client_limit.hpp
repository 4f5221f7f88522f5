// ClientConnectionLimit: how many connections each client (ClientKey) may hold at once,
// shared by listeners on several loops.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/client_key.hpp"
#include "netloop/client_slot.hpp"

namespace netloop {

// A client's count exists only while it has connections, so the table never holds more
// entries than there are open connections (which max_connections bounds). Sharded by key
// hash, each shard a mutex and a hash map; nodes of clients that left are kept (a few per
// shard) and reused, so the steady state allocates nothing per connection.
class ClientConnectionLimit {
 public:
  // per_client: connections one client may hold at once (at least 1); ipv6_prefix: how
  // IPv6 peers are grouped (32..128, see ClientKey::of).
  explicit ClientConnectionLimit(size_t per_client, int ipv6_prefix = 64);

  ClientKey key_of(const Address& peer) const noexcept { return ClientKey::of(peer, prefix_); }
  // False when the client already holds per_client connections (or, rarely, when memory
  // for a new client's entry ran out).
  bool try_acquire(const ClientKey& key) noexcept;
  bool try_acquire(const Address& peer) noexcept { return try_acquire(key_of(peer)); }
  // Gives back one count taken by try_acquire (a key holding none is ignored).
  void release(const ClientKey& key) noexcept;
  void release(const Address& peer) noexcept { release(key_of(peer)); }

  size_t per_client() const noexcept { return per_client_; }
  int ipv6_prefix() const noexcept { return prefix_; }
  // Introspection (tests, counters): locks each shard in turn.
  size_t open(const ClientKey& key) const;  // the client's connections now
  size_t clients() const;                   // clients with a connection now
  size_t open_total() const;                // connections counted now
  size_t spare_nodes() const;               // kept for reuse (bounded)

  static constexpr size_t kShards = 16;
  static constexpr size_t kSparePerShard = 64;

 private:
  using Map = std::unordered_map<ClientKey, uint32_t, ClientKeyHash>;
  struct alignas(64) Shard {
    mutable std::mutex mutex;
    Map counts;
    std::vector<Map::node_type> spare;
  };
  static size_t shard_index(size_t hash) noexcept;

  size_t per_client_;
  int prefix_;
  ClientKeyHash hash_;
  std::array<Shard, kShards> shards_;
};

}  // namespace netloop
