// FileCache: reading small files in, looking them up, and the byte budget.
#include "http/file_cache.hpp"

#include <charconv>
#include <unistd.h>

#include "http/http_date.hpp"

namespace netloop::http {

bool CachedFile::same_file(const struct stat& st) const noexcept {
  timespec m = mtime_of(st);
  return st.st_dev == dev && st.st_ino == ino && st.st_size == size && m.tv_sec == mtime.tv_sec &&
         m.tv_nsec == mtime.tv_nsec;
}

void append_file_headers(std::string& out, std::string_view content_type, uint64_t length,
                         time_t mtime) {
  out.append("Content-Type: ");
  out.append(content_type);
  out.append("\r\nContent-Length: ");
  char num[24];
  auto [end, ec] = std::to_chars(num, num + sizeof num, length);
  out.append(num, size_t(end - num));
  out.append("\r\nLast-Modified: ");
  char date[kHttpDateSize];
  format_http_date(mtime, date);
  out.append(date, sizeof date);
  out.append("\r\n");
}

CachedFile* FileCache::find(std::string_view key) noexcept {
  if (last_ && key == last_key_) return last_;
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  last_key_ = it->first;
  last_ = &it->second;
  return last_;
}

void FileCache::erase(std::string_view key) {
  auto it = map_.find(key);
  if (it == map_.end()) return;
  if (last_ == &it->second) last_ = nullptr;
  bytes_ -= it->second.body.size() + it->second.headers.size() + it->first.size();
  map_.erase(it);
}

CachedFile* FileCache::insert(std::string_view key, int fd, const struct stat& st,
                              std::string_view content_type, TimePoint now) {
  if (st.st_size < 0 || size_t(st.st_size) > max_file_) return nullptr;
  erase(key);
  size_t size = size_t(st.st_size);
  CachedFile entry;
  entry.body.resize(size);
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(fd, entry.body.data() + got, size - got, off_t(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return nullptr;  // an error, or the file shrank under us
    got += size_t(n);
  }
  char probe;
  if (::pread(fd, &probe, 1, off_t(size)) != 0) return nullptr;  // it grew: not what stat said
  append_file_headers(entry.headers, content_type, size, mtime_of(st).tv_sec);
  entry.dev = st.st_dev;
  entry.ino = st.st_ino;
  entry.size = st.st_size;
  entry.mtime = mtime_of(st);
  entry.checked = now;
  size_t cost = entry.body.size() + entry.headers.size() + key.size();
  if (cost > max_bytes_) return nullptr;
  if (bytes_ + cost > max_bytes_) {
    last_ = nullptr;
    map_.clear();
    bytes_ = 0;
  }
  bytes_ += cost;
  auto [it, inserted] = map_.insert_or_assign(std::string(key), std::move(entry));
  return &it->second;
}

}  // namespace netloop::http
