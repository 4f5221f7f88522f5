// The HTTP character scanners (protocols/http/char_scan.hpp): the vector paths agree with
// the class table for every byte value, at every position of a 16-byte block and in the
// scalar tail, and never read past `end` (inputs end at a guard page).
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

#include "http/char_scan.hpp"

using namespace netloop::http;

namespace {

// `n` bytes ending exactly at a PROT_NONE page: any read past them faults.
struct Guarded {
  char* base = nullptr;
  size_t page = size_t(::sysconf(_SC_PAGESIZE));
  Guarded() {
    void* m = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    base = static_cast<char*>(m);
    REQUIRE(::mprotect(base + page, page, PROT_NONE) == 0);
  }
  ~Guarded() { ::munmap(base, 2 * page); }
  char* place(const std::string& s) {
    char* p = base + page - s.size();
    std::memcpy(p, s.data(), s.size());
    return p;
  }
};

struct Scanner {
  const char* name;
  uint8_t cls;
  const char* (*skip)(const char*, const char*);
  int except = -1;  // a byte of the class the scanner stops at all the same
  bool member(int b) const { return b != except && scan::is(char(b), cls); }
};

const Scanner kScanners[] = {
    {"tchar", scan::kTchar, scan::skip_tchars},
    {"target", scan::kTarget, scan::skip_target_chars},
    {"host", scan::kHost, scan::skip_host_chars},
    {"value", scan::kValue, scan::skip_value_chars},
    {"path", scan::kTarget, scan::skip_path_chars, '?'},
};

}  // namespace

TEST_CASE("char scan: every byte value at every position agrees with the class table") {
  Guarded g;
  for (const auto& sc : kScanners) {
    CAPTURE(sc.name);
    size_t mismatches = 0;
    for (int b = 0; b < 256; ++b) {
      for (size_t len = 1; len <= 40; ++len) {  // every tail length, both sides of a block
        for (size_t pos = 0; pos < len; ++pos) {
          std::string s(len, 'a');  // 'a' is in every class
          s[pos] = char(b);
          const char* p = g.place(s);
          const char* stop = sc.skip(p, p + len);
          size_t want = sc.member(b) ? len : pos;
          if (size_t(stop - p) != want) ++mismatches;
        }
      }
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("char scan: an empty range and a range of members") {
  Guarded g;
  for (const auto& sc : kScanners) {
    CAPTURE(sc.name);
    const char* p = g.place("");
    CHECK(sc.skip(p, p) == p);
    std::string all(100, 'Z');
    p = g.place(all);
    CHECK(sc.skip(p, p + all.size()) == p + all.size());
  }
  CHECK(scan::all_of("127.0.0.1:8080", scan::skip_host_chars));
  CHECK(scan::all_of("[::1]:8080", scan::skip_host_chars));
  CHECK_FALSE(scan::all_of("user@host", scan::skip_host_chars));
  CHECK_FALSE(scan::all_of("a/b", scan::skip_host_chars));
}

TEST_CASE("char scan: with two stray bytes the first one stops the scan (overlapping tail loads)") {
  Guarded g;
  for (const auto& sc : kScanners) {
    CAPTURE(sc.name);
    size_t mismatches = 0;
    for (size_t len = 2; len <= 34; ++len) {
      for (size_t i = 0; i < len; ++i) {
        for (size_t j = i + 1; j < len; ++j) {
          std::string s(len, 'a');
          s[i] = '\x01';  // a control: in no class
          s[j] = '\x02';
          const char* p = g.place(s);
          if (sc.skip(p, p + len) != p + i) ++mismatches;
        }
      }
    }
    CHECK(mismatches == 0);
  }
}

#if defined(__SSE2__)
TEST_CASE("char scan: load_partial reads exactly n bytes into the low lanes, zeros above") {
  Guarded g;
  for (size_t n = 1; n <= 16; ++n) {
    CAPTURE(n);
    std::string s;
    for (size_t i = 0; i < n; ++i) s.push_back(char(0xa0 + i));
    const char* p = g.place(s);  // ends at the guard page: a read past it faults
    alignas(16) unsigned char lanes[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes), scan::detail::load_partial(p, n));
    for (size_t i = 0; i < 16; ++i) {
      CAPTURE(i);
      CHECK(lanes[i] == (i < n ? (unsigned char)(0xa0 + i) : 0));
    }
  }
}
#endif
