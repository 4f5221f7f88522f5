// Request-rate limits per client: a token bucket, a fixed-capacity table of buckets that
// forgets the least recently seen client when full (RateLimitTable, one thread), and a
// sharded, thread-safe set of those tables shared by every loop (RateLimiter). Time is
// always passed in, so tests need no sleeping.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "netloop/client_key.hpp"
#include "netloop/clock.hpp"

namespace netloop {

struct RateLimitConfig {
  double rate = 1;   // tokens added per second (> 0)
  double burst = 1;  // the bucket's size: requests allowed at once after a quiet spell (>= 1)
};

// What one request gets: allowed, or refused with how long until a token is there.
struct RateDecision {
  bool allowed = true;
  Duration retry_after{};
  // retry_after in whole seconds, rounded up (at least 1), for an HTTP Retry-After field.
  uint32_t retry_after_seconds() const noexcept;
};

// Starts full. 16 bytes: many fit in a table.
class TokenBucket {
 public:
  TokenBucket() noexcept = default;
  explicit TokenBucket(const RateLimitConfig& c, TimePoint now) noexcept
      : tokens_(c.burst), last_(now) {}
  RateDecision take(const RateLimitConfig& c, TimePoint now) noexcept;
  double tokens() const noexcept { return tokens_; }

 private:
  double tokens_ = 0;
  TimePoint last_{};
};

// Buckets of up to `capacity` clients in memory allocated once, up front. A client not
// in the table gets a full bucket, taking the least recently seen client's place when
// the table is full: a flood of addresses only makes the table forget (its victims get a
// fresh full bucket), it never grows. Not thread-safe.
class RateLimitTable {
 public:
  RateLimitTable(size_t capacity, const RateLimitConfig& config);
  RateDecision take(const ClientKey& key, TimePoint now) noexcept { return take(key, hash_(key), now); }
  RateDecision take(const ClientKey& key, size_t hash, TimePoint now) noexcept;

  size_t size() const noexcept { return size_; }
  size_t capacity() const noexcept { return nodes_.size(); }
  uint64_t evictions() const noexcept { return evictions_; }
  const RateLimitConfig& config() const noexcept { return config_; }
  // Bytes held by the table (fixed at construction): tests check a flood leaves it alone.
  size_t memory_bytes() const noexcept;
  bool contains(const ClientKey& key) const noexcept;

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Node {
    ClientKey key;
    TokenBucket bucket;
    uint32_t prev, next;  // recency list: head_ is the most recent
    uint32_t hash;        // low bits of the key's hash: its home slot, and a cheap compare
  };
  uint32_t find_slot(const ClientKey& key, uint32_t hash) const noexcept;  // index_ slot or kNone
  void erase_slot(uint32_t slot) noexcept;
  void unlink(uint32_t n) noexcept;
  void push_front(uint32_t n) noexcept;

  RateLimitConfig config_;
  ClientKeyHash hash_;
  std::vector<Node> nodes_;      // capacity of them, the first size_ in use
  std::vector<uint32_t> index_;  // open addressing (linear probing) into nodes_, kNone = empty
  uint32_t mask_ = 0;
  size_t size_ = 0;
  uint32_t head_ = kNone, tail_ = kNone;
  uint64_t evictions_ = 0;
};

// RateLimitTables for every loop of a server: one client's requests count the same
// whichever loop its connections landed on. Sharded by key hash, a mutex per shard, so
// loops rarely wait on each other.
class RateLimiter {
 public:
  // `clients`: how many clients are remembered in all (split among the shards).
  RateLimiter(const RateLimitConfig& config, size_t clients, int ipv6_prefix = 64);
  RateDecision take(const ClientKey& key, TimePoint now) noexcept;
  ClientKey key_of(const Address& peer) const noexcept { return ClientKey::of(peer, prefix_); }
  const RateLimitConfig& config() const noexcept { return config_; }
  size_t capacity() const noexcept;
  size_t size() const;
  size_t memory_bytes() const noexcept;

  static constexpr size_t kShards = 16;

 private:
  struct alignas(64) Shard {
    std::mutex mutex;
    std::unique_ptr<RateLimitTable> table;
  };
  RateLimitConfig config_;
  int prefix_;
  ClientKeyHash hash_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace netloop
