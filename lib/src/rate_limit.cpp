// Token buckets per client in fixed memory: RateLimitTable (open addressing plus a
// recency list, both over one array allocated up front) and its sharded RateLimiter.
#include "netloop/rate_limit.hpp"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>

namespace netloop {
namespace {

// The rounding in tokens_ + elapsed * rate must not make a client that waited exactly
// the time it was told wait once more.
constexpr double kEpsilon = 1e-9;

size_t shard_index(size_t hash) noexcept {  // the top bits; the tables probe by the low ones
  return (hash >> (sizeof(size_t) * 8 - 8)) % RateLimiter::kShards;
}

}  // namespace

uint32_t RateDecision::retry_after_seconds() const noexcept {
  using namespace std::chrono;
  auto s = duration_cast<seconds>(retry_after).count();
  if (duration_cast<Duration>(seconds(s)) < retry_after) ++s;  // rounded up
  return uint32_t(std::clamp<int64_t>(s, 1, 86'400));
}

RateDecision TokenBucket::take(const RateLimitConfig& c, TimePoint now) noexcept {
  if (now > last_) {  // loops' clocks may lag each other a little: never go back
    double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(c.burst, tokens_ + elapsed * c.rate);
    last_ = now;
  }
  if (tokens_ >= 1 - kEpsilon) {
    tokens_ = std::max(0.0, tokens_ - 1);
    return {};
  }
  double wait = (1 - tokens_) / c.rate;
  return {false, std::chrono::duration_cast<Duration>(std::chrono::duration<double>(wait))};
}

RateLimitTable::RateLimitTable(size_t capacity, const RateLimitConfig& config)
    : config_(config) {
  capacity = std::clamp<size_t>(capacity, 1, size_t(1) << 30);
  nodes_.resize(capacity);
  // At most half full, so probes stay short and an empty slot always ends one.
  index_.assign(std::bit_ceil(capacity * 2), kNone);
  mask_ = uint32_t(index_.size() - 1);
}

size_t RateLimitTable::memory_bytes() const noexcept {
  return nodes_.capacity() * sizeof(Node) + index_.capacity() * sizeof(uint32_t);
}

bool RateLimitTable::contains(const ClientKey& key) const noexcept {
  return find_slot(key, uint32_t(hash_(key))) != kNone;
}

uint32_t RateLimitTable::find_slot(const ClientKey& key, uint32_t hash) const noexcept {
  for (uint32_t i = hash & mask_;; i = (i + 1) & mask_) {
    uint32_t n = index_[i];
    if (n == kNone) return kNone;
    if (nodes_[n].hash == hash && nodes_[n].key == key) return i;
  }
}

// Backward-shift deletion: entries after the hole that may live in it move up, so no
// tombstones build up under a churn of clients.
void RateLimitTable::erase_slot(uint32_t i) noexcept {
  index_[i] = kNone;
  for (uint32_t j = (i + 1) & mask_; index_[j] != kNone; j = (j + 1) & mask_) {
    uint32_t home = nodes_[index_[j]].hash & mask_;
    bool movable = j > i ? (home <= i || home > j) : (home <= i && home > j);
    if (movable) {
      index_[i] = index_[j];
      index_[j] = kNone;
      i = j;
    }
  }
}

void RateLimitTable::unlink(uint32_t n) noexcept {
  Node& x = nodes_[n];
  (x.prev == kNone ? head_ : nodes_[x.prev].next) = x.next;
  (x.next == kNone ? tail_ : nodes_[x.next].prev) = x.prev;
}

void RateLimitTable::push_front(uint32_t n) noexcept {
  Node& x = nodes_[n];
  x.prev = kNone;
  x.next = head_;
  (head_ == kNone ? tail_ : nodes_[head_].prev) = n;
  head_ = n;
}

RateDecision RateLimitTable::take(const ClientKey& key, size_t full_hash, TimePoint now) noexcept {
  uint32_t hash = uint32_t(full_hash);
  if (uint32_t slot = find_slot(key, hash); slot != kNone) {
    uint32_t n = index_[slot];
    if (n != head_) {
      unlink(n);
      push_front(n);
    }
    return nodes_[n].bucket.take(config_, now);
  }
  uint32_t n;
  if (size_ < nodes_.size()) {
    n = uint32_t(size_++);
  } else {  // full: the least recently seen client is forgotten
    n = tail_;
    erase_slot(find_slot(nodes_[n].key, nodes_[n].hash));
    unlink(n);
    ++evictions_;
  }
  Node& x = nodes_[n];
  x.key = key;
  x.hash = hash;
  x.bucket = TokenBucket(config_, now);
  uint32_t i = hash & mask_;
  while (index_[i] != kNone) i = (i + 1) & mask_;
  index_[i] = n;
  push_front(n);
  return x.bucket.take(config_, now);
}

RateLimiter::RateLimiter(const RateLimitConfig& config, size_t clients, int ipv6_prefix)
    : config_(config),
      prefix_(std::clamp(ipv6_prefix, ClientKey::kMinIpv6Prefix, ClientKey::kMaxIpv6Prefix)) {
  size_t per_shard = std::max<size_t>(1, (clients + kShards - 1) / kShards);
  for (Shard& s : shards_) s.table = std::make_unique<RateLimitTable>(per_shard, config);
}

RateDecision RateLimiter::take(const ClientKey& key, TimePoint now) noexcept {
  size_t h = hash_(key);
  Shard& s = shards_[shard_index(h)];
  std::lock_guard lock(s.mutex);
  return s.table->take(key, h, now);
}

size_t RateLimiter::capacity() const noexcept {
  size_t n = 0;
  for (const Shard& s : shards_) n += s.table->capacity();
  return n;
}

size_t RateLimiter::size() const {
  size_t n = 0;
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    n += s.table->size();
  }
  return n;
}

size_t RateLimiter::memory_bytes() const noexcept {
  size_t n = 0;
  for (const Shard& s : shards_) n += s.table->memory_bytes();
  return n;
}

}  // namespace netloop
