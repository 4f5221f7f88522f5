// Buffer: growth, compaction and release.
#include "netloop/buffer.hpp"

#include <algorithm>
#include <cassert>
#include <utility>

namespace netloop {

Buffer::Buffer(Buffer&& other) noexcept
    : storage_(std::exchange(other.storage_, nullptr)),
      capacity_(std::exchange(other.capacity_, 0)),
      read_(std::exchange(other.read_, 0)),
      write_(std::exchange(other.write_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    delete[] storage_;
    storage_ = std::exchange(other.storage_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
    read_ = std::exchange(other.read_, 0);
    write_ = std::exchange(other.write_, 0);
  }
  return *this;
}

void Buffer::consume(size_t n) noexcept {
  assert(n <= size());
  read_ += n;
  if (read_ == write_) read_ = write_ = 0;  // empty: start over at the front
}

void Buffer::append(const void* data, size_t n) {
  if (n == 0) return;
  std::memcpy(prepare(n), data, n);
  write_ += n;
}

char* Buffer::prepare(size_t n) {
  if (writable() < n) make_room(n);
  return storage_ + write_;
}

void Buffer::commit(size_t n) noexcept {
  assert(n <= writable());
  write_ += n;
}

void Buffer::reserve(size_t n) {
  if (n > capacity_ - read_) make_room(n - size());
}

void Buffer::release() noexcept {
  if (!empty()) return;
  delete[] storage_;
  storage_ = nullptr;
  capacity_ = read_ = write_ = 0;
}

void Buffer::make_room(size_t n) {
  size_t used = size();
  // Slide the readable bytes to the front when that alone makes enough room and the
  // move is cheap relative to the space it frees.
  if (read_ > 0 && capacity_ - used >= n && used <= read_) {
    std::memmove(storage_, storage_ + read_, used);
    read_ = 0;
    write_ = used;
    return;
  }
  size_t want = std::max<size_t>(used + n, 256);
  size_t cap = std::max(capacity_ * 2, want);
  char* fresh = new char[cap];
  if (used) std::memcpy(fresh, storage_ + read_, used);
  delete[] storage_;
  storage_ = fresh;
  capacity_ = cap;
  read_ = 0;
  write_ = used;
}

}  // namespace netloop
