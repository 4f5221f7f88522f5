// Small files kept in memory with their response headers, checked against the disk at
// most once per revalidation period. One cache per loop: not thread-safe by design.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unordered_map>

#include "netloop/clock.hpp"

namespace netloop::http {

inline timespec mtime_of(const struct stat& st) noexcept {
#ifdef __APPLE__
  return st.st_mtimespec;
#else
  return st.st_mtim;
#endif
}

struct CachedFile {
  std::string body;
  // "Content-Type: ...\r\nContent-Length: N\r\nLast-Modified: ...\r\n"
  std::string headers;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
  TimePoint checked{};  // when it was last compared with the disk

  // The whole keep-alive HTTP/1.1 200 response (head and body), built on first use; its
  // Date is rewritten in place when the second changes. Serving the common case is then
  // one copy.
  std::string response;
  size_t response_head = 0;  // bytes of the head (what HEAD sends)
  size_t date_at = 0;        // where the Date value sits in `response`
  time_t date_second = -1;

  bool same_file(const struct stat& st) const noexcept;
};

class FileCache {
 public:
  FileCache(size_t max_file, size_t max_bytes) : max_file_(max_file), max_bytes_(max_bytes) {}

  // Heterogeneous lookup: no allocation for a hit.
  CachedFile* find(std::string_view key) noexcept;
  // Reads the open file `fd` (regular, at most max_file() bytes) into the cache under
  // `key`, replacing any entry. nullptr when the read fails or the file changed size
  // under us. When the cache would pass its byte budget it is emptied first: simple, and
  // a working set larger than the budget is served by sendfile anyway.
  CachedFile* insert(std::string_view key, int fd, const struct stat& st,
                     std::string_view content_type, TimePoint now);
  void erase(std::string_view key);

  size_t max_file() const noexcept { return max_file_; }
  size_t bytes() const noexcept { return bytes_; }
  size_t entries() const noexcept { return map_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, CachedFile, Hash, std::equal_to<>> map_;
  // The entry found last: a hot file is served without hashing its name (node-based map,
  // so the pointers stay valid until that entry is erased).
  std::string_view last_key_;
  CachedFile* last_ = nullptr;
  size_t max_file_;
  size_t max_bytes_;
  size_t bytes_ = 0;
};

// "Content-Type: ...\r\nContent-Length: N\r\nLast-Modified: ...\r\n" for a file.
void append_file_headers(std::string& out, std::string_view content_type, uint64_t length,
                         time_t mtime);

}  // namespace netloop::http
