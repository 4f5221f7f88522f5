// Unit tests for Buffer (lib/src/buffer.cpp): cursors, prepare/commit, growth,
// compaction, release, moves and views.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include "netloop/buffer.hpp"

using netloop::Buffer;

namespace {

// Deterministic, non-repeating-looking bytes, so a misplaced byte shows up.
std::string pattern(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 12345u;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = char(x >> 24);
  }
  return s;
}

}  // namespace

TEST_CASE("buffer: a default buffer is empty and owns no storage") {
  Buffer b;
  CHECK(b.empty());
  CHECK(b.size() == 0);
  CHECK(b.capacity() == 0);
  CHECK(b.writable() == 0);
  CHECK(b.view().empty());
  CHECK(b.bytes().empty());
  CHECK(b.to_string().empty());
}

TEST_CASE("buffer: append then consume hands bytes back in order") {
  Buffer b;
  b.append("hello");
  b.append(std::string_view(", "));
  const char world[] = "world!";
  b.append(world, 5);
  CHECK(b.size() == 12);
  CHECK_FALSE(b.empty());
  CHECK(b.view() == "hello, world");

  b.consume(0);
  CHECK(b.view() == "hello, world");
  b.consume(7);
  CHECK(b.size() == 5);
  CHECK(b.view() == "world");
  CHECK(b.data()[0] == 'w');

  b.append("wide");
  CHECK(b.view() == "worldwide");
  b.consume(9);
  CHECK(b.empty());
  CHECK(b.size() == 0);
  CHECK(b.capacity() > 0);  // consuming everything keeps the storage
}

TEST_CASE("buffer: append of zero bytes changes nothing, even from a null pointer") {
  Buffer b;
  b.append(nullptr, 0);
  b.append(std::string_view());
  CHECK(b.empty());
  CHECK(b.capacity() == 0);  // nothing was allocated for nothing
  b.append("ab");
  b.append(nullptr, 0);
  CHECK(b.view() == "ab");
}

TEST_CASE("buffer: append of a std::byte span") {
  const std::byte raw[] = {std::byte{0x00}, std::byte{0xff}, std::byte{0x7f}, std::byte{0x80}};
  Buffer b;
  b.append(std::span<const std::byte>(raw));
  REQUIRE(b.size() == 4);
  CHECK(std::memcmp(b.data(), raw, 4) == 0);
  CHECK(b.bytes()[1] == std::byte{0xff});
}

TEST_CASE("buffer: consuming every byte rewinds the cursors to the front") {
  Buffer b;
  b.append(pattern(100));
  const char* front = b.data();
  b.consume(40);
  CHECK(b.data() == front + 40);
  CHECK(b.view() == std::string_view(pattern(100)).substr(40));
  b.consume(60);
  CHECK(b.empty());
  // The whole storage is writable again, and new bytes start at the front.
  CHECK(b.writable() == b.capacity());
  b.append("x");
  CHECK(b.data() == front);
  CHECK(b.view() == "x");
}

TEST_CASE("buffer: clear() drops the bytes and keeps the storage") {
  Buffer b;
  b.append(pattern(300));
  size_t cap = b.capacity();
  b.consume(10);
  b.clear();
  CHECK(b.empty());
  CHECK(b.capacity() == cap);
  CHECK(b.writable() == cap);
}

TEST_CASE("buffer: prepare() gives room after the readable bytes and commit() publishes it") {
  Buffer b;
  char* p = b.prepare(100);
  REQUIRE(p != nullptr);
  CHECK(p == b.write_ptr());
  CHECK(b.writable() >= 100);
  CHECK(b.empty());  // prepare alone makes nothing readable

  std::memcpy(p, "abcdef", 6);
  b.commit(4);  // only part of what was written counts
  CHECK(b.view() == "abcd");
  CHECK(b.writable() >= 96);

  b.commit(0);
  CHECK(b.size() == 4);

  // A prepare that must grow keeps the readable bytes.
  char* q = b.prepare(10000);
  CHECK(q == b.write_ptr());
  CHECK(b.writable() >= 10000);
  CHECK(b.view() == "abcd");
  std::memcpy(q, "XYZ", 3);
  b.commit(3);
  CHECK(b.view() == "abcdXYZ");

  // commit() after consume keeps the order.
  b.consume(2);
  char* r = b.prepare(2);
  std::memcpy(r, "!?", 2);
  b.commit(2);
  CHECK(b.view() == "cdXYZ!?");
}

TEST_CASE("buffer: prepare() with enough free room neither moves nor grows") {
  Buffer b(1024);
  size_t cap = b.capacity();
  b.append("0123456789");
  const char* data = b.data();
  char* p = b.prepare(100);
  CHECK(b.capacity() == cap);
  CHECK(b.data() == data);
  CHECK(p == data + 10);
  CHECK(b.prepare(0) == p);
}

TEST_CASE("buffer: growth is geometric and keeps every byte") {
  Buffer b;
  std::string expect;
  size_t cap = 0;
  int reallocations = 0;
  const size_t total = size_t(1) << 20;
  expect.reserve(total);
  for (size_t i = 0; i < total; ++i) {
    char c = char(i * 7 + (i >> 8));
    b.append(&c, 1);
    expect.push_back(c);
    if (b.capacity() != cap) {
      ++reallocations;
      CHECK(b.capacity() >= b.size());
      cap = b.capacity();
    }
  }
  CHECK(b.size() == total);
  CHECK(b.view() == expect);
  // 1 MiB one byte at a time: a doubling buffer reallocates about a dozen times,
  // a linear one thousands.
  CHECK(reallocations <= 24);
  CHECK(b.capacity() < 4 * total);
}

TEST_CASE("buffer: free room at the front is reused (compaction) before growing") {
  Buffer b(256);
  const size_t cap = b.capacity();
  REQUIRE(cap >= 256);
  std::string first = pattern(cap - 16, 3);
  b.append(first);              // nearly full
  b.consume(cap - 64);          // 48 bytes left, far from the front
  std::string left = b.to_string();
  REQUIRE(left.size() == 48);
  REQUIRE(b.writable() < 100);  // the back alone cannot take the next append

  std::string more = pattern(100, 4);
  b.append(more);
  CHECK(b.capacity() == cap);   // slid to the front instead of reallocating
  CHECK(b.view() == left + more);

  // Same through prepare/commit.
  b.consume(b.size() - 20);
  std::string tail = b.to_string();
  size_t want = b.capacity() - 30;
  REQUIRE(b.writable() < want);
  char* p = b.prepare(want);
  CHECK(b.capacity() == cap);
  CHECK(b.view() == tail);
  std::memset(p, 'z', want);
  b.commit(want);
  CHECK(b.view() == tail + std::string(want, 'z'));
}

TEST_CASE("buffer: initial capacity and reserve()") {
  Buffer b(4096);
  CHECK(b.capacity() >= 4096);
  CHECK(b.writable() >= 4096);
  CHECK(b.empty());

  Buffer z(0);
  CHECK(z.capacity() == 0);

  b.append("abc");
  b.reserve(10000);
  CHECK(b.view() == "abc");
  CHECK(b.capacity() >= 10000);
  CHECK(b.writable() >= 10000 - 3);

  size_t cap = b.capacity();
  const char* data = b.data();
  b.reserve(100);  // already there: nothing changes
  CHECK(b.capacity() == cap);
  CHECK(b.data() == data);
}

TEST_CASE("buffer: release() frees the storage only when the buffer is empty") {
  Buffer b;
  const std::string text = pattern(1000, 5);
  b.append(text);
  const size_t cap = b.capacity();
  REQUIRE(cap >= 1000);

  b.release();  // not empty: must keep everything
  CHECK(b.capacity() == cap);
  CHECK(b.view() == text);

  b.consume(999);
  b.release();  // one byte left: still not empty
  CHECK(b.capacity() == cap);
  CHECK(b.view() == text.substr(999));

  b.consume(1);
  b.release();
  CHECK(b.empty());
  CHECK(b.capacity() == 0);
  CHECK(b.writable() == 0);
  CHECK(b.view().empty());

  // Usable again after release.
  b.append("again");
  CHECK(b.view() == "again");

  // clear() then release() frees too; release() of a buffer that owns nothing is harmless.
  b.clear();
  b.release();
  CHECK(b.capacity() == 0);
  b.release();
  CHECK(b.capacity() == 0);
}

TEST_CASE("buffer: move construction and move assignment transfer the bytes") {
  Buffer a;
  a.append("0123456789");
  a.consume(3);
  const char* p = a.data();

  Buffer b(std::move(a));
  CHECK(b.view() == "3456789");
  CHECK(b.data() == p);  // the storage moved, not a copy
  CHECK(a.empty());      // NOLINT(bugprone-use-after-move): moved-from state is specified
  CHECK(a.capacity() == 0);
  a.append("reuse");     // the moved-from buffer is usable
  CHECK(a.view() == "reuse");

  Buffer c;
  c.append(pattern(5000));  // its old storage must be freed by the assignment (ASan: no leak)
  c = std::move(b);
  CHECK(c.view() == "3456789");
  CHECK(c.data() == p);
  CHECK(b.empty());
  CHECK(b.capacity() == 0);

  Buffer& alias = c;
  c = std::move(alias);  // self-move leaves it intact
  CHECK(c.view() == "3456789");

  c.append("X");
  CHECK(c.view() == "3456789X");
}

TEST_CASE("buffer: large appends keep every byte") {
  SUBCASE("one 5 MiB append") {
    Buffer b;
    const std::string big = pattern(size_t(5) << 20, 7);
    b.append(big);
    CHECK(b.size() == big.size());
    CHECK(b.view() == big);
    b.consume(big.size() / 2);
    CHECK(b.view() == std::string_view(big).substr(big.size() / 2));
  }
  SUBCASE("random chunks interleaved with partial consumption, against a model") {
    std::mt19937 rng(42);
    const std::string src = pattern(size_t(1) << 20, 9);
    Buffer b;
    std::string model;
    size_t appended = 0;
    for (int i = 0; i < 2000; ++i) {
      size_t n = rng() % 40000;
      size_t off = rng() % (src.size() - n);
      if (i % 3 == 0) {
        b.append(src.data() + off, n);
      } else {  // the same bytes through prepare/commit
        char* p = b.prepare(n);
        std::memcpy(p, src.data() + off, n);
        b.commit(n);
      }
      model.append(src, off, n);
      appended += n;
      size_t k = model.empty() ? 0 : rng() % (model.size() + 1);
      b.consume(k);
      model.erase(0, k);
      REQUIRE(b.size() == model.size());
      if (i % 50 == 0) REQUIRE(b.view() == model);
    }
    CHECK(appended > (size_t(20) << 20));
    CHECK(b.view() == model);
  }
}

TEST_CASE("buffer: view() and bytes() cover exactly the readable bytes, NULs included") {
  Buffer b;
  b.append("abc\0def", 7);
  b.consume(1);
  auto v = b.view();
  CHECK(v.size() == 6);
  CHECK(v == std::string_view("bc\0def", 6));
  CHECK(v.data() == b.data());

  auto s = b.bytes();
  CHECK(s.size() == 6);
  CHECK(reinterpret_cast<const char*>(s.data()) == b.data());
  CHECK(s[2] == std::byte{0});
  CHECK(s[5] == std::byte{'f'});

  CHECK(b.to_string() == std::string("bc\0def", 6));
}
