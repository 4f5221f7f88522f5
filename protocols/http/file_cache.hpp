// What the responder knows of the files it serves: one entry per representation (a file,
// or a precompressed sibling of one), with its validators, its response fields and, for
// small files, the whole prepared response. Checked against the disk at most once per
// revalidation period. One cache per loop: not thread-safe by design.
#pragma once

#include <cstddef>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unordered_map>

#include "http/accept_encoding.hpp"
#include "netloop/clock.hpp"
#include "netloop/fd.hpp"
#include "netloop/protocol.hpp"

namespace netloop::http {

// What identifies a file's contents on disk. ctime is in it because an edit that keeps
// size and mtime (a rewrite followed by touch -d) still moves ctime, which no one can set.
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
  timespec ctime{};

  static FileIdentity of(const struct stat& st) noexcept;
  bool operator==(const FileIdentity& o) const noexcept;
};

// A response kept whole (head, and body when there is one) whose Date is rewritten in
// place when the second changes: serving it is one copy.
struct PreparedResponse {
  std::string text;
  size_t head = 0;     // bytes of the head (what HEAD sends)
  size_t date_at = 0;  // where the Date value sits
  time_t date_second = -1;

  bool empty() const noexcept { return text.empty(); }
  void refresh(std::string_view date, time_t second) noexcept;
};

// One representation, as served.
struct CachedFile {
  FileIdentity id;
  Coding coding = Coding::identity;
  uint8_t siblings = 0;    // identity entries: coding_bit()s of precompressed siblings
  bool in_memory = false;  // the body is in `ok` (small files); else sent from disk
  std::string disk_path;   // relative to the root, as RootDirectory::open_file takes it
  // A file sent from disk keeps its descriptor open (like nginx's open_file_cache): a
  // response shares it (Connection::send_file takes a SharedFd) instead of resolving the
  // path again, so it stays open while a response queued from it waits, even after the
  // entry is gone. A bounded number of entries keep one (FileCache::can_keep).
  SharedFd kept;
  TimePoint kept_seen{};  // when `kept` was last found (fstat) to be this file still
  std::string etag;        // strong, quoted
  time_t last_modified = 0;     // the mtime, but never later than when it was read
  bool last_modified_strong = false;  // the mtime was a second or more before that
  // Field lines, each ending in CRLF: "Content-Type: ...", then Content-Encoding (if any),
  // Last-Modified and Accept-Ranges; then the validators a 304 repeats: ETag, Vary (when
  // the file has siblings), Cache-Control (when configured).
  std::string type_line;
  std::string meta_lines;
  std::string validator_lines;
  // The keep-alive HTTP/1.1 responses, made on first use: 200 (with the body when
  // in_memory) and 304.
  PreparedResponse ok;
  PreparedResponse not_modified;
  TimePoint checked{};  // when it was last compared with the disk

  std::string_view body() const noexcept {  // in_memory only
    return std::string_view(ok.text).substr(ok.head);
  }
  uint64_t length() const noexcept { return uint64_t(id.size); }
  size_t held_bytes() const noexcept;
};

class FileCache {
 public:
  // Files up to `max_file` bytes are held in memory; every entry's strings together (the
  // prepared responses included) stay within `max_bytes`.
  FileCache(size_t max_file, size_t max_bytes) : max_file_(max_file), max_bytes_(max_bytes) {}

  // Heterogeneous lookup: no allocation for a hit.
  CachedFile* find(std::string_view key) noexcept;
  // Puts `entry` (its fields made, its body read if in_memory) under `key`, replacing any
  // entry. nullptr when it alone passes the budget. When the cache would pass its budget
  // it is emptied first: simple, and a working set larger than the budget is served from
  // disk anyway.
  CachedFile* insert(std::string_view key, CachedFile&& entry);
  void erase(std::string_view key);
  // An entry grew (a prepared response was made) from `before` (its held_bytes() then):
  // counted, and the cache emptied of everything else if that passes the budget.
  void grew(CachedFile& entry, size_t before);

  // Whether one more entry may keep its descriptor open.
  bool can_keep() const noexcept { return kept_ < kMaxKept; }
  size_t kept() const noexcept { return kept_; }
  static constexpr size_t kMaxKept = 128;

  size_t max_file() const noexcept { return max_file_; }
  size_t max_bytes() const noexcept { return max_bytes_; }
  size_t bytes() const noexcept { return bytes_; }
  size_t entries() const noexcept { return map_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  void clear_except(const CachedFile* keep);

  std::unordered_map<std::string, CachedFile, Hash, std::equal_to<>> map_;
  // The entry found last: a hot file is served without hashing its name (node-based map,
  // so the pointers stay valid until that entry is erased).
  std::string_view last_key_;
  CachedFile* last_ = nullptr;
  size_t max_file_;
  size_t max_bytes_;
  size_t bytes_ = 0;
  size_t kept_ = 0;  // entries holding a descriptor
};

// Appends `length` bytes of `fd` from `offset` to `out`; false (and `out` as it was) when
// the file is shorter or a read fails.
bool read_file_range(int fd, uint64_t offset, uint64_t length, std::string& out);
// Appends the whole of `fd`, `size` bytes, to `out`; false when the file turns out to be
// shorter or longer than that, or a read fails.
bool read_whole_file(int fd, size_t size, std::string& out);

}  // namespace netloop::http
