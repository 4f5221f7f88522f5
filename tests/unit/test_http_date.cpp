// Unit tests for format_http_date and DateCache (protocols/http/http_date.cpp) and for
// content_type_for (protocols/http/mime_types.cpp).
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

#include <time.h>

#include "http/http_date.hpp"
#include "http/mime_types.hpp"

using netloop::http::content_type_for;
using netloop::http::DateCache;
using netloop::http::format_http_date;
using netloop::http::kHttpDateSize;

namespace {

std::string format(std::time_t t) {
  // Sentinels after the 29 bytes catch a write past them.
  char buf[kHttpDateSize + 3];
  std::memset(buf, '#', sizeof buf);
  format_http_date(t, buf);
  CHECK(buf[kHttpDateSize] == '#');
  CHECK(buf[kHttpDateSize + 1] == '#');
  CHECK(buf[kHttpDateSize + 2] == '#');
  return std::string(buf, kHttpDateSize);
}

struct DateRow {
  std::time_t t;
  std::string_view text;
};

const DateRow kDates[] = {
    {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
    {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},  // RFC 9110's example
    {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},  // leap day (a 400-year leap year)
    {951868799, "Tue, 29 Feb 2000 23:59:59 GMT"},
    {1709210096, "Thu, 29 Feb 2024 12:34:56 GMT"},  // leap day
    {1234567890, "Fri, 13 Feb 2009 23:31:30 GMT"},
    {2147483647, "Tue, 19 Jan 2038 03:14:07 GMT"},  // the last 32-bit second
    {2147483648, "Tue, 19 Jan 2038 03:14:08 GMT"},  // and the one after
    {4107542400, "Mon, 01 Mar 2100 00:00:00 GMT"},  // 2100 is not a leap year
    {253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"},
};

struct MimeRow {
  std::string_view name;
  std::string_view type;
};

const MimeRow kMime[] = {
    {"index.html", "text/html; charset=utf-8"},
    {"INDEX.HTML", "text/html; charset=utf-8"},
    {"page.Htm", "text/html; charset=utf-8"},
    {".css", "application/octet-stream"},  // a dotfile named ".css", no extension
    {"style.css", "text/css; charset=utf-8"},
    {"app.js", "text/javascript; charset=utf-8"},
    {"data.json", "application/json"},
    {"image.PNG", "image/png"},
    {"photo.jpeg", "image/jpeg"},
    {"icon.svg", "image/svg+xml"},
    {"font.woff2", "font/woff2"},
    {"site.webmanifest", "application/manifest+json"},
    {"README", "application/octet-stream"},
    {".bashrc", "application/octet-stream"},
    {"a.tar.gz", "application/gzip"},
    {"archive.tar", "application/x-tar"},
    {"dir.d/file", "application/octet-stream"},
    {"dir.d/file.txt", "text/plain; charset=utf-8"},
    {"a/b.c/.hidden", "application/octet-stream"},
    {"/abs/path/x.pdf", "application/pdf"},
    {"trailing.", "application/octet-stream"},
    {"x.unknownext", "application/octet-stream"},
    {"x.htmlx", "application/octet-stream"},
    {"x.ht", "application/octet-stream"},
    {"", "application/octet-stream"},
};

}  // namespace

TEST_CASE("http date: format_http_date known values") {
  for (const DateRow& row : kDates) {
    CAPTURE(row.t);
    CHECK(format(row.t) == row.text);
  }
}

TEST_CASE("http date: DateCache::now is the current time in IMF-fixdate") {
  DateCache cache;
  std::string_view now = cache.now();
  std::time_t wall = std::time(nullptr);
  CAPTURE(now);
  REQUIRE(now.size() == kHttpDateSize);
  CHECK(now.substr(now.size() - 4) == " GMT");
  CHECK(now[3] == ',');

  std::string text(now);
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  REQUIRE(end != nullptr);
  CHECK(*end == '\0');
  std::time_t parsed = ::timegm(&tm);
  CHECK(std::llabs(static_cast<long long>(parsed) - static_cast<long long>(wall)) <= 2);

  // It formats what format_http_date formats.
  CHECK(text == format(parsed));
  // Called again, it still gives a well-formed date within the same bounds.
  std::string_view again = cache.now();
  REQUIRE(again.size() == kHttpDateSize);
  std::tm tm2{};
  std::string text2(again);
  REQUIRE(::strptime(text2.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm2) != nullptr);
  CHECK(::timegm(&tm2) >= parsed);
  CHECK(::timegm(&tm2) - parsed <= 2);
}

TEST_CASE("mime types: content_type_for by extension") {
  for (const MimeRow& row : kMime) {
    CAPTURE(row.name);
    CHECK(content_type_for(row.name) == row.type);
  }
}
