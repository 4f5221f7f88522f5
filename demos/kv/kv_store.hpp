// KvStore: the keys and values of one event loop, with times to live.
//
// Lookups take string_view keys (heterogeneous lookup: no std::string is made to look a
// key up); only inserting a new key allocates (its node, key and value), and
// overwriting a value reuses its storage when it fits. Expiry is lazy (a read of an
// expired key reclaims it) plus a bounded sweep per command over a min-heap of
// deadlines, so keys nobody reads again are reclaimed too. Not thread-safe: one loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kv/kv.hpp"
#include "netloop/buffer.hpp"
#include "netloop/clock.hpp"

namespace netloop::demo::kv {

class KvStore {
 public:
  struct Entry {
    std::string value;
    TimePoint expires = TimePoint::max();  // max: no time to live
    uint64_t ttl_seq = 0;                  // names this entry's item in the deadline heap
  };
  enum class Ttl : uint8_t { clear, keep, set };

  explicit KvStore(const KvOptions& options) : options_(options) {}
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  const KvOptions& options() const noexcept { return options_; }
  // The loop's reply buffer: connections take turns (one on_data at a time), each
  // leaving it empty, so one allocation serves every connection of the loop.
  Buffer& reply_buffer() noexcept { return reply_; }

  // The live entry for `key`, or null (an expired one is reclaimed on the way).
  Entry* find(std::string_view key, TimePoint now);
  // Stores `value` under `key`; `existing` is find(key)'s answer. Ttl::set gives it
  // `expires`, clear removes any time to live, keep leaves it as it was.
  void put(Entry* existing, std::string_view key, std::string_view value, Ttl ttl,
           TimePoint expires);
  // Removes `key`; true when a live key was removed.
  bool erase(std::string_view key, TimePoint now);
  void clear() noexcept;

  // Reclaims up to `budget` keys whose time to live has run out.
  void expire_some(TimePoint now, size_t budget);
  // Keys held, after reclaiming every expired one.
  size_t live_size(TimePoint now);
  // Keys held, expired ones not yet reclaimed included.
  size_t size() const noexcept { return map_.size(); }
  size_t volatile_count() const noexcept { return volatile_; }
  size_t deadline_heap_size() const noexcept { return deadlines_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using Map = std::unordered_map<std::string, Entry, Hash, std::equal_to<>>;
  struct Deadline {
    TimePoint at;
    uint64_t seq;
    std::string key;
  };
  struct Later {
    bool operator()(const Deadline& a, const Deadline& b) const noexcept { return a.at > b.at; }
  };

  void erase(Map::iterator it) noexcept;
  void set_ttl(std::string_view key, Entry& e, TimePoint at);
  void clear_ttl(Entry& e) noexcept;
  void compact_deadlines();

  KvOptions options_;
  Map map_;
  // Min-heap of deadlines. An item is current while its key's entry carries its seq;
  // overwritten or deleted keys leave stale items, dropped when popped or compacted.
  std::vector<Deadline> deadlines_;
  uint64_t next_seq_ = 1;
  size_t volatile_ = 0;  // entries with a time to live
  Buffer reply_;
};

}  // namespace netloop::demo::kv
