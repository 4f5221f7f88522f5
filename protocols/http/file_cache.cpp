// FileCache: lookups, the byte budget, and what an entry holds.
#include "http/file_cache.hpp"

#include <cerrno>
#include <unistd.h>

namespace netloop::http {

namespace {

#ifdef __APPLE__
timespec mtime_of(const struct stat& st) noexcept { return st.st_mtimespec; }
timespec ctime_of(const struct stat& st) noexcept { return st.st_ctimespec; }
#else
timespec mtime_of(const struct stat& st) noexcept { return st.st_mtim; }
timespec ctime_of(const struct stat& st) noexcept { return st.st_ctim; }
#endif

bool same_time(const timespec& a, const timespec& b) noexcept {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

}  // namespace

FileIdentity FileIdentity::of(const struct stat& st) noexcept {
  return {st.st_dev, st.st_ino, st.st_size, mtime_of(st), ctime_of(st)};
}

bool FileIdentity::operator==(const FileIdentity& o) const noexcept {
  return dev == o.dev && ino == o.ino && size == o.size && same_time(mtime, o.mtime) &&
         same_time(ctime, o.ctime);
}

void PreparedResponse::refresh(std::string_view date, time_t second) noexcept {
  if (date_second == second) return;
  text.replace(date_at, date.size(), date);
  date_second = second;
}

size_t CachedFile::held_bytes() const noexcept {
  return etag.capacity() + disk_path.capacity() + type_line.capacity() + meta_lines.capacity() +
         validator_lines.capacity() + ok.text.capacity() + not_modified.text.capacity() +
         sizeof(CachedFile);
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
  bytes_ -= it->second.held_bytes() + it->first.size();
  if (it->second.kept) --kept_;
  map_.erase(it);
}

void FileCache::clear_except(const CachedFile* keep) {
  last_ = nullptr;
  for (auto it = map_.begin(); it != map_.end();) {
    if (&it->second == keep) {
      ++it;
      continue;
    }
    bytes_ -= it->second.held_bytes() + it->first.size();
    if (it->second.kept) --kept_;
    it = map_.erase(it);
  }
}

CachedFile* FileCache::insert(std::string_view key, CachedFile&& entry) {
  erase(key);
  size_t cost = entry.held_bytes() + key.size();
  if (cost > max_bytes_) return nullptr;
  if (bytes_ + cost > max_bytes_) clear_except(nullptr);
  bytes_ += cost;
  if (entry.kept) ++kept_;
  auto [it, inserted] = map_.insert_or_assign(std::string(key), std::move(entry));
  return &it->second;
}

void FileCache::grew(CachedFile& entry, size_t before) {
  size_t added = entry.held_bytes() - before;
  bytes_ += added;
  if (bytes_ > max_bytes_) clear_except(&entry);
}

bool read_file_range(int fd, uint64_t offset, uint64_t length, std::string& out) {
  size_t base = out.size();
  out.resize(base + size_t(length));
  size_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, out.data() + base + got, size_t(length) - got, off_t(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // an error, or the file shrank under us
      out.resize(base);
      return false;
    }
    got += size_t(n);
  }
  return true;
}

bool read_whole_file(int fd, size_t size, std::string& out) {
  if (!read_file_range(fd, 0, size, out)) return false;
  char probe;
  return ::pread(fd, &probe, 1, off_t(size)) == 0;  // it grew: not what stat said
}

}  // namespace netloop::http
