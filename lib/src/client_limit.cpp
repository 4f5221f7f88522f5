// ClientConnectionLimit: per-client connection counts in a sharded, self-pruning table.
#include "netloop/client_limit.hpp"

#include <algorithm>
#include <new>
#include <utility>

namespace netloop {

ClientConnectionLimit::ClientConnectionLimit(size_t per_client, int ipv6_prefix)
    : per_client_(std::max<size_t>(per_client, 1)),
      prefix_(std::clamp(ipv6_prefix, ClientKey::kMinIpv6Prefix, ClientKey::kMaxIpv6Prefix)) {
  for (Shard& s : shards_) s.spare.reserve(kSparePerShard);  // pushing a spare never allocates
}

size_t ClientConnectionLimit::shard_index(size_t hash) noexcept {
  // The top bits pick the shard; the maps bucket by the low ones.
  return (hash >> (sizeof(size_t) * 8 - 8)) % kShards;
}

bool ClientConnectionLimit::try_acquire(const ClientKey& key) noexcept {
  Shard& s = shards_[shard_index(hash_(key))];
  std::lock_guard lock(s.mutex);
  auto it = s.counts.find(key);
  if (it != s.counts.end()) {
    if (it->second >= per_client_) return false;
    ++it->second;
    return true;
  }
  try {
    if (!s.spare.empty()) {
      Map::node_type node = std::move(s.spare.back());
      s.spare.pop_back();
      node.key() = key;
      node.mapped() = 1;
      s.counts.insert(std::move(node));  // may grow the bucket array, never past its peak
    } else {
      s.counts.emplace(key, 1);
    }
  } catch (const std::bad_alloc&) {
    return false;  // refused like a client at its limit rather than counted wrongly
  }
  return true;
}

void ClientConnectionLimit::release(const ClientKey& key) noexcept {
  Shard& s = shards_[shard_index(hash_(key))];
  std::lock_guard lock(s.mutex);
  auto it = s.counts.find(key);
  if (it == s.counts.end()) return;
  if (--it->second > 0) return;
  // The client's last connection: its entry goes, its node is kept for the next client.
  Map::node_type node = s.counts.extract(it);
  if (s.spare.size() < kSparePerShard) {
    s.spare.push_back(std::move(node));  // within the capacity reserved
  }
}

size_t ClientConnectionLimit::open(const ClientKey& key) const {
  const Shard& s = shards_[shard_index(hash_(key))];
  std::lock_guard lock(s.mutex);
  auto it = s.counts.find(key);
  return it == s.counts.end() ? 0 : it->second;
}

size_t ClientConnectionLimit::clients() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    n += s.counts.size();
  }
  return n;
}

size_t ClientConnectionLimit::open_total() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    for (const auto& [key, count] : s.counts) n += count;
  }
  return n;
}

size_t ClientConnectionLimit::spare_nodes() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    n += s.spare.size();
  }
  return n;
}

ClientSlot ClientSlot::acquire(ClientConnectionLimit& limit, const Address& peer) noexcept {
  ClientSlot slot;
  ClientKey key = limit.key_of(peer);
  if (!limit.try_acquire(key)) return slot;
  slot.limit_ = &limit;
  slot.key_ = key;
  return slot;
}

ClientSlot& ClientSlot::operator=(ClientSlot&& o) noexcept {
  if (this != &o) {
    release();
    limit_ = std::exchange(o.limit_, nullptr);
    key_ = o.key_;
  }
  return *this;
}

void ClientSlot::release() noexcept {
  if (auto* l = std::exchange(limit_, nullptr)) l->release(key_);
}

}  // namespace netloop
