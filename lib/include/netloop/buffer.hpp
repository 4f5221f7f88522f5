// Buffer: a growable contiguous byte buffer with read and write cursors.
//
// Readable bytes are [data(), data() + size()); free space follows them. An empty
// buffer can give its storage back (release()) so idle connections hold nothing.
#pragma once

#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace netloop {

class Buffer {
 public:
  Buffer() noexcept = default;
  explicit Buffer(size_t initial_capacity) { reserve(initial_capacity); }
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { delete[] storage_; }

  // Readable region.
  const char* data() const noexcept { return storage_ + read_; }
  size_t size() const noexcept { return write_ - read_; }
  bool empty() const noexcept { return read_ == write_; }
  std::string_view view() const noexcept { return {data(), size()}; }
  std::span<const std::byte> bytes() const noexcept {
    return {reinterpret_cast<const std::byte*>(data()), size()};
  }
  std::string to_string() const { return std::string(view()); }

  // Drops `n` readable bytes from the front (n <= size()).
  void consume(size_t n) noexcept;
  // Drops every readable byte; keeps the storage.
  void clear() noexcept { read_ = write_ = 0; }

  // Appends bytes at the back, growing as needed.
  void append(const void* data, size_t n);
  void append(std::string_view s) { append(s.data(), s.size()); }
  void append(std::span<const std::byte> b) { append(b.data(), b.size()); }

  // Writable region: prepare(n) guarantees at least n free bytes after the readable
  // ones and returns where they start; commit(n) marks n of them readable.
  char* prepare(size_t n);
  void commit(size_t n) noexcept;
  char* write_ptr() noexcept { return storage_ + write_; }
  size_t writable() const noexcept { return capacity_ - write_; }

  size_t capacity() const noexcept { return capacity_; }
  void reserve(size_t n);
  // Frees the storage when the buffer is empty (idle connections keep nothing).
  void release() noexcept;

 private:
  void make_room(size_t n);

  char* storage_ = nullptr;
  size_t capacity_ = 0;
  size_t read_ = 0;
  size_t write_ = 0;
};

}  // namespace netloop
