// Unit tests for normalize_path (protocols/http/request_path.cpp): percent-decoding once,
// dot segments, and everything that must be refused so that no request names a file
// above the served root.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>
#include <iterator>
#include <set>
#include <string>
#include <string_view>

#include "http/request_path.hpp"

using namespace std::string_literals;
using netloop::http::normalize_path;
using netloop::http::PathResult;

namespace {

struct Row {
  std::string raw;
  uint16_t http_status;  // 0 or 400
  std::string out;       // when 0
  bool directory;        // when 0
};

const Row kRows[] = {
    // Plain paths.
    {"/", 0, "", true},
    {"/index.html", 0, "index.html", false},
    {"/a/b/", 0, "a/b", true},
    {"/a/b/c.txt", 0, "a/b/c.txt", false},
    {"//a//b", 0, "a/b", false},
    {"///", 0, "", true},
    // Dot segments.
    {"/a/./b", 0, "a/b", false},
    {"/./", 0, "", true},
    {"/a/b/./c/.", 0, "a/b/c", true},
    {"/a/../b", 0, "b", false},
    {"/a/b/../../c", 0, "c", false},
    {"/a/b/..", 0, "a", true},
    {"/a/..", 0, "", true},
    {"/a/../", 0, "", true},
    {"/a/...", 0, "a/...", false},
    {"/..a", 0, "..a", false},
    {"/a..", 0, "a..", false},
    {"/.hidden", 0, ".hidden", false},
    // Climbing above the root.
    {"/..", 400, "", false},
    {"/../", 400, "", false},
    {"/../etc/passwd", 400, "", false},
    {"/a/../..", 400, "", false},
    {"/a/../../b", 400, "", false},
    {"/a/b/../../..", 400, "", false},
    {"/./../x", 400, "", false},
    // Percent-decoding happens once, before the segment is judged.
    {"/%2e", 0, "", true},
    {"/%2e%2e/", 400, "", false},
    {"/%2E%2E/x", 400, "", false},
    {"/.%2e/", 400, "", false},
    {"/%2e./x", 400, "", false},
    {"/a/%2e%2e/b", 0, "b", false},
    {"/a/%2E./b", 0, "b", false},
    {"/%2e%2e%2e", 0, "...", false},
    {"/%41%42c", 0, "ABc", false},
    {"/a%20b", 0, "a b", false},
    {"/caf%C3%A9", 0, "caf\xc3\xa9", false},
    {"/caf%c3%a9/", 0, "caf\xc3\xa9", true},
    {"/%ff", 0, "\xff", false},
    {"/%252e%252e/", 0, "%2e%2e", true},                  // double encoding is decoded once only
    {"/%c0%ae%c0%ae/x", 0, "\xc0\xae\xc0\xae/x", false},  // overlong UTF-8 is not '.'
    // Encoded separators, NUL and control characters.
    {"/%2f..", 400, "", false},
    {"/a%2fb", 400, "", false},
    {"/a%2Fb", 400, "", false},
    {"/a%5cb", 400, "", false},
    {"/a%5C..%5C..", 400, "", false},
    {"/%00", 400, "", false},
    {"/a%00.html", 400, "", false},
    {"/a%0a", 400, "", false},
    {"/a%0d%0a", 400, "", false},
    {"/a%1f", 400, "", false},
    {"/a%7f", 400, "", false},
    {"/a%09b", 400, "", false},
    {"/a\x01"s, 400, "", false},
    {"/a\0b"s, 400, "", false},
    {"/a\x7f"s, 400, "", false},
    // Malformed percent-encoding.
    {"/%zz", 400, "", false},
    {"/%g0", 400, "", false},
    {"/%0g", 400, "", false},
    {"/%4", 400, "", false},
    {"/a/%4/", 400, "", false},
    {"/%", 400, "", false},
    {"/a%", 400, "", false},
    {"/%%41", 400, "", false},
    // Not a path.
    {"no-leading-slash", 400, "", false},
    {"a/b", 400, "", false},
    {"", 400, "", false},
    {"%2fa", 400, "", false},
};

// No empty, "." or ".." segment in a normalized path ("" for the root is fine).
bool no_bad_segment(std::string_view out) {
  if (out.empty()) return true;
  for (;;) {
    size_t slash = out.find('/');
    std::string_view seg = out.substr(0, slash);
    if (seg.empty() || seg == "." || seg == "..") return false;
    if (slash == std::string_view::npos) return true;
    out.remove_prefix(slash + 1);
  }
}

}  // namespace

TEST_CASE("request path: normalize_path table") {
  std::set<std::string> seen;
  for (const Row& row : kRows) {
    CAPTURE(row.raw);
    CHECK(seen.insert(row.raw).second);  // no duplicate rows
    std::string out = "left over from before";
    PathResult r = normalize_path(row.raw, out);
    INFO("reason: " << r.reason << "; out: " << out);
    CHECK(r.http_status == row.http_status);
    if (r.http_status != row.http_status) continue;
    if (row.http_status == 0) {
      CHECK(r.reason.empty());
      CHECK(out == row.out);
      CHECK(r.directory == row.directory);
      // The promises of the header: no leading '/', no empty, "." or ".." segment.
      CHECK((out.empty() || out.front() != '/'));
      CHECK((out.empty() || out.back() != '/'));
      CHECK(out.find("//") == std::string::npos);
      CHECK(no_bad_segment(out));
      CHECK(out.find('\0') == std::string::npos);
    } else {
      CHECK_FALSE(r.reason.empty());
    }
  }
  MESSAGE("rows: " << std::size(kRows));
}

TEST_CASE("request path: the output string keeps its capacity between calls") {
  std::string out;
  const std::string long_path = "/" + std::string(200, 'd') + "/" + std::string(200, 'f');
  REQUIRE(normalize_path(long_path, out).http_status == 0);
  REQUIRE(out.size() == 401);
  const size_t capacity = out.capacity();
  const char* storage = out.data();

  // Shorter results, a refusal and a climb back down all reuse the same storage.
  for (std::string_view raw : {"/index.html", "/../x", "/a/b/../c", "/", "/%zz", "/x/y/z"}) {
    CAPTURE(raw);
    normalize_path(raw, out);
    CHECK(out.capacity() == capacity);
    CHECK(out.data() == storage);
  }
  REQUIRE(normalize_path("/a/b/../c", out).http_status == 0);
  CHECK(out == "a/c");
  // The same input twice gives the same result in the same storage.
  REQUIRE(normalize_path(long_path, out).http_status == 0);
  CHECK(out.size() == 401);
  CHECK(out.data() == storage);
  CHECK(out.capacity() == capacity);
}

TEST_CASE("request path: a call after a refusal starts afresh") {
  std::string out;
  CHECK(normalize_path("/a/b/%zz", out).http_status == 400);
  REQUIRE(normalize_path("/c", out).http_status == 0);
  CHECK(out == "c");
  CHECK(normalize_path("/a/b/../../..", out).http_status == 400);
  REQUIRE(normalize_path("/d/", out).http_status == 0);
  CHECK(out == "d");
}

namespace {

// A second, deliberately naive implementation of the same rules: split on '/', decode
// each segment, drop "" and ".", pop for "..". normalize_path's fast path for plain paths
// (a vector check over whole 16-byte blocks and an in-bounds load of the last 1..16
// bytes) must agree with it everywhere.
PathResult reference_normalize(std::string_view raw, std::string& out) {
  out.clear();
  if (raw.empty() || raw.front() != '/') return {400, "start", false};
  std::vector<std::string> segs;
  bool dir = true;
  size_t i = 1;
  while (i <= raw.size()) {
    size_t slash = raw.find('/', i);
    if (slash == std::string_view::npos) slash = raw.size();
    std::string seg;
    for (size_t k = i; k < slash; ++k) {
      char c = raw[k];
      if (c == '%') {
        auto hex = [](char h) {
          if (h >= '0' && h <= '9') return h - '0';
          if (h >= 'a' && h <= 'f') return h - 'a' + 10;
          if (h >= 'A' && h <= 'F') return h - 'A' + 10;
          return -1;
        };
        if (k + 2 >= raw.size()) return {400, "pct", false};
        int hi = hex(raw[k + 1]), lo = hex(raw[k + 2]);
        if (hi < 0 || lo < 0) return {400, "pct", false};
        c = char(hi * 16 + lo);
        if (c == '\0' || c == '/' || c == '\\') return {400, "enc", false};
        k += 2;
      }
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return {400, "ctl", false};
      seg.push_back(c);
    }
    if (seg.empty() || seg == ".") {
      dir = true;
    } else if (seg == "..") {
      if (segs.empty()) return {400, "climb", false};
      segs.pop_back();
      dir = true;
    } else {
      segs.push_back(seg);
      dir = false;
    }
    i = slash + 1;
  }
  for (size_t k = 0; k < segs.size(); ++k) {
    if (k) out += '/';
    out += segs[k];
  }
  return {0, {}, dir};
}

}  // namespace

TEST_CASE("request path: the plain-path fast path agrees with a naive decoder at every length and position") {
  // Paths of 1..40 bytes of 'a' with something that makes a path not plain ('%', a
  // control, DEL, "//", "/.", "/..") or harmless look-alikes ('.', "a."), placed at every
  // position: every tail length 1..16 of the vector check, and the seam between blocks.
  const std::string specials[] = {"%41", "%2e%2e", "\x01", "\x7f", "//", "/.", "/..", "/../",
                                  ".", "a.", "/.a", "/a.", "%", "%4", "/"};
  size_t compared = 0, mismatches = 0;
  std::string got, want;
  for (size_t len = 1; len <= 40; ++len) {
    for (const std::string& sp : specials) {
      for (size_t pos = 1; pos + sp.size() <= len; ++pos) {
        std::string raw(len, 'a');  // built in place: "/" + string trips GCC 12's -Wrestrict
        raw[0] = '/';
        raw.replace(pos, sp.size(), sp);
        // Exactly raw.size() bytes on the heap: ASan sees any read past them.
        std::unique_ptr<char[]> exact(new char[raw.size()]);
        std::memcpy(exact.get(), raw.data(), raw.size());
        PathResult a = normalize_path({exact.get(), raw.size()}, got);
        PathResult b = reference_normalize(raw, want);
        ++compared;
        // The responder looks a plain path up in its cache as the path less its leading
        // '/', without normalizing it: that must be exactly the key normalize_path gives.
        if (netloop::http::is_plain_path(raw) && raw.size() > 1 && a.http_status == 0) {
          std::string key = got + (a.directory ? "/" : "");
          if (key != raw.substr(1)) {
            ++mismatches;
            MESSAGE("'" << raw << "' is plain but its key is '" << key << "'");
          }
        }
        bool same = a.http_status == b.http_status &&
                    (a.http_status != 0 || (got == want && a.directory == b.directory));
        if (!same) {
          ++mismatches;
          if (mismatches <= 5)
            MESSAGE("'" << raw << "': " << a.http_status << " '" << got << "' vs " << b.http_status
                        << " '" << want << "'");
        }
      }
    }
  }
  CHECK(compared > 5000);
  CHECK(mismatches == 0);
}
