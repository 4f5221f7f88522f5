// Unit tests for normalize_path (protocols/http/request_path.cpp): percent-decoding once,
// dot segments, and everything that must be refused so that no request names a file
// above the served root.
#include <doctest/doctest.h>

#include <cstdint>
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
