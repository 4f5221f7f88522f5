// KvStore: the map, lazy and swept expiry.
#include "kv/kv_store.hpp"

#include <algorithm>

namespace netloop::demo::kv {

KvStore::Entry* KvStore::find(std::string_view key, TimePoint now) {
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  if (it->second.expires <= now) {
    erase(it);
    return nullptr;
  }
  return &it->second;
}

void KvStore::put(Entry* existing, std::string_view key, std::string_view value, Ttl ttl,
                  TimePoint expires) {
  Entry* e = existing;
  if (!e) e = &map_.try_emplace(std::string(key)).first->second;
  e->value.assign(value.data(), value.size());  // reuses the old value's storage when it fits
  if (ttl == Ttl::set) set_ttl(key, *e, expires);
  else if (ttl == Ttl::clear) clear_ttl(*e);
}

bool KvStore::erase(std::string_view key, TimePoint now) {
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  bool live = it->second.expires > now;
  erase(it);
  return live;
}

void KvStore::erase(Map::iterator it) noexcept {
  clear_ttl(it->second);
  map_.erase(it);
}

void KvStore::clear() noexcept {
  map_.clear();
  deadlines_.clear();
  volatile_ = 0;
}

void KvStore::set_ttl(std::string_view key, Entry& e, TimePoint at) {
  if (e.expires == TimePoint::max()) ++volatile_;
  e.expires = at;
  e.ttl_seq = next_seq_++;
  deadlines_.push_back({at, e.ttl_seq, std::string(key)});
  std::push_heap(deadlines_.begin(), deadlines_.end(), Later{});
  // Stale items (keys overwritten, deleted or given a new deadline) are dropped once
  // they outnumber the current ones: amortized O(1) per push.
  if (deadlines_.size() > 2 * volatile_ + 1024) compact_deadlines();
}

void KvStore::clear_ttl(Entry& e) noexcept {
  if (e.expires == TimePoint::max()) return;
  --volatile_;
  e.expires = TimePoint::max();
  e.ttl_seq = 0;
}

void KvStore::compact_deadlines() {
  std::erase_if(deadlines_, [this](const Deadline& d) {
    auto it = map_.find(std::string_view(d.key));
    return it == map_.end() || it->second.ttl_seq != d.seq;
  });
  std::make_heap(deadlines_.begin(), deadlines_.end(), Later{});
}

void KvStore::expire_some(TimePoint now, size_t budget) {
  while (budget > 0 && !deadlines_.empty() && deadlines_.front().at <= now) {
    std::pop_heap(deadlines_.begin(), deadlines_.end(), Later{});
    Deadline d = std::move(deadlines_.back());
    deadlines_.pop_back();
    auto it = map_.find(std::string_view(d.key));
    if (it != map_.end() && it->second.ttl_seq == d.seq) erase(it);
    --budget;  // stale items count too: the work per call stays bounded
  }
}

size_t KvStore::live_size(TimePoint now) {
  expire_some(now, SIZE_MAX);
  return map_.size();
}

std::shared_ptr<KvStore> make_kv_store(const KvOptions& options) {
  return std::make_shared<KvStore>(options);
}

size_t key_count(const KvStore& store) noexcept { return store.size(); }

}  // namespace netloop::demo::kv
