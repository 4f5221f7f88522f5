// Unit tests for format_http_date, parse_http_date and DateCache
// (protocols/http/http_date.cpp) and for content_type_for (protocols/http/mime_types.cpp).
// Dates to parse are copied to a heap block of exactly their size, so under ASan a read
// past the end is reported.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <time.h>

#include "http/http_date.hpp"
#include "http/mime_types.hpp"

using netloop::http::content_type_for;
using netloop::http::DateCache;
using netloop::http::format_http_date;
using netloop::http::kHttpDateSize;
using netloop::http::parse_http_date;

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

namespace {

// parse_http_date over an exactly-sized heap copy of `s`.
std::optional<std::time_t> parse(std::string_view s) {
  std::vector<char> bytes(s.begin(), s.end());
  return parse_http_date(std::string_view(bytes.data(), bytes.size()));
}

constexpr std::time_t kYear0 = -62167219200;  // Sat, 01 Jan 0000 00:00:00 GMT

// The current year, from the wall clock, for RFC 850's two-digit years.
int current_year() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  return tm.tm_year + 1900;
}

constexpr const char* kShortDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kLongDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                     "Thursday", "Friday", "Saturday"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// `t` in the two obsolete layouts, built from gmtime_r's fields.
std::string asctime_of(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s %s %2d %02d:%02d:%02d %04d", kShortDays[tm.tm_wday],
                kMonths[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                tm.tm_year + 1900);
  return buf;
}
std::string rfc850_of(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d-%s-%02d %02d:%02d:%02d GMT", kLongDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], (tm.tm_year + 1900) % 100, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

struct ParseRow {
  std::string_view text;
  std::time_t t;
};

const ParseRow kParseRows[] = {
    // IMF-fixdate.
    {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
    {"Mon, 06 Nov 1994 08:49:37 GMT", 784111777},  // the day name is not checked
    {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
    {"Wed, 31 Dec 1969 23:59:59 GMT", -1},
    {"Sat, 01 Jan 0000 00:00:00 GMT", kYear0},
    {"Fri, 31 Dec 9999 23:59:59 GMT", 253402300799},
    {"Tue, 29 Feb 2000 00:00:00 GMT", 951782400},
    {"Thu, 29 Feb 2024 12:34:56 GMT", 1709210096},
    {"Mon, 01 Mar 2100 00:00:00 GMT", 4107542400},
    {"Sun, 29 Feb 2004 00:00:00 GMT", 1078012800},
    {"Tue, 19 Jan 2038 03:14:08 GMT", 2147483648},
    {"Tue, 31 Dec 2024 23:59:60 GMT", 1735689599},  // a leap second: read as second 59
    {"Tue, 30 Jun 2015 23:59:60 GMT", 1435708799},
    {"Fri, 31 Dec 9999 23:59:60 GMT", 253402300799},
    {"Sun, 06 Nov 1994 08:49:60 GMT", 784111799},
    // asctime: the day is 2DIGIT or SP DIGIT.
    {"Sun Nov  6 08:49:37 1994", 784111777},
    {"Sun Nov 06 08:49:37 1994", 784111777},
    {"Thu Jan  1 00:00:00 1970", 0},
    {"Tue Feb 29 23:59:59 2000", 951868799},
    {"Fri Dec 31 23:59:59 9999", 253402300799},
    {"Sat Jan  1 00:00:00 0000", kYear0},
};

const std::string_view kInvalid[] = {
    "",
    "S",
    "Sun",
    "Sun,",
    "Sun, ",
    "Sun, 06 Nov 1994 08:49:37 GM",
    "Sun, 06 Nov 1994 08:49:37 GMT ",  // trailing bytes
    "Sun, 06 Nov 1994 08:49:37 GMTx",
    "Sun, 06 Nov 1994 08:49:37 GMT\r\n",
    " Sun, 06 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37 gmt",
    "Sun, 06 Nov 1994 08:49:37 UTC",
    "Sun, 06 Nov 1994 08:49:37 +0000",
    "Sun, 06 Nov 1994 08:49:37",
    "sun, 06 Nov 1994 08:49:37 GMT",  // names are case-sensitive
    "SUN, 06 Nov 1994 08:49:37 GMT",
    "Sun, 06 nov 1994 08:49:37 GMT",
    "Sun, 06 NOV 1994 08:49:37 GMT",
    "Xyz, 06 Nov 1994 08:49:37 GMT",
    "Sun, 06 Xyz 1994 08:49:37 GMT",
    "Sun, 6 Nov 1994 08:49:37 GMT",
    "Sun,  6 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 94 08:49:37 GMT",
    "Sun, 06 Nov 01994 08:49:37 GMT",
    "Sun, 06 Nov 1994 8:49:37 GMT",
    "Sun, 06 Nov 1994 08:49 GMT",
    "Sun, 06 Nov 1994 08-49-37 GMT",
    "Sun,06 Nov 1994 08:49:37 GMT",
    "Sun, 06  Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994  08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37  GMT",
    "Sun, 06-Nov-1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 +8:49:37 GMT",
    "Sun, -6 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37.5 GMT",
    // Fields out of range.
    "Sun, 06 Nov 1994 24:00:00 GMT",
    "Sun, 06 Nov 1994 08:60:00 GMT",
    "Sun, 06 Nov 1994 08:49:61 GMT",
    "Sun, 06 Nov 1994 99:99:99 GMT",
    "Sun, 00 Nov 1994 08:49:37 GMT",
    "Sun, 31 Nov 1994 08:49:37 GMT",
    "Sun, 32 Jan 1994 08:49:37 GMT",
    "Sun, 31 Feb 1994 08:49:37 GMT",
    "Sun, 30 Feb 2000 08:49:37 GMT",
    "Sun, 29 Feb 1900 08:49:37 GMT",  // not a leap year
    "Sun, 29 Feb 2023 08:49:37 GMT",
    "Sun, 29 Feb 2100 08:49:37 GMT",
    "Sun, 31 Apr 2023 08:49:37 GMT",
    "Sun, 31 Jun 2023 08:49:37 GMT",
    "Sun, 31 Sep 2023 08:49:37 GMT",
    // RFC 850.
    "Sunday, 06-Nov-94 08:49:37 GMT ",
    "Sunday, 06-Nov-94 08:49:37",
    "Sunday, 06-Nov-1994 08:49:37 GMT",
    "Sunday, 06 Nov 1994 08:49:37 GMT",
    "Sunday, 6-Nov-94 08:49:37 GMT",
    "Sunday, 06-nov-94 08:49:37 GMT",
    "sunday, 06-Nov-94 08:49:37 GMT",
    "Sun, 06-Nov-94 08:49:37 GMT",  // a short day name
    "Sundy, 06-Nov-94 08:49:37 GMT",
    "Sunday 06-Nov-94 08:49:37 GMT",
    "Sunday, 31-Nov-94 08:49:37 GMT",
    "Sunday, 06-Nov-94 24:49:37 GMT",
    "Sunday, 06-Nov-94 08:49:37 UTC",
    // asctime.
    "Sun Nov 6 08:49:37 1994",
    "Sun Nov   6 08:49:37 1994",
    "Sun Nov  6 08:49:37 94",
    "Sun Nov  6 08:49:37 1994 GMT",
    "Sun Nov  6 08:49:37 1994 ",
    "Sun Nov  0 08:49:37 1994",
    "Sun Nov 00 08:49:37 1994",
    "Sun Nov 31 08:49:37 1994",
    "Sun Nov  x 08:49:37 1994",
    "Sun nov  6 08:49:37 1994",
    "Sun Nov  6 08:49:37 19945",
    "Sun Nov  6 08:49:37",
    "Sunday Nov  6 08:49:37 1994",
    "Sun  Nov  6 08:49:37 1994",
    "Sun Nov  6 24:00:00 1994",
};

}  // namespace

TEST_CASE("http date: parse_http_date known values in the three layouts") {
  for (const ParseRow& row : kParseRows) {
    CAPTURE(row.text);
    std::optional<std::time_t> t = parse(row.text);
    REQUIRE(t.has_value());
    CHECK(*t == row.t);
  }
  for (const DateRow& row : kDates) {
    CAPTURE(row.text);
    CHECK(parse(row.text) == std::optional<std::time_t>(row.t));
  }
}

TEST_CASE("http date: parse_http_date rejects other layouts, bad fields and trailing bytes") {
  for (std::string_view text : kInvalid) {
    CAPTURE(text);
    CHECK_FALSE(parse(text).has_value());
  }
  // Every byte value in every position of a valid date: at most the digits give another
  // valid date, and then exactly the one those digits say.
  const std::string good = "Sun, 06 Nov 1994 08:49:37 GMT";
  size_t accepted = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    for (int b = 0; b < 256; ++b) {
      if (char(b) == good[i]) continue;
      std::string s = good;
      s[i] = char(b);
      if (!parse(s).has_value()) continue;
      ++accepted;
      CAPTURE(s);
      bool digit = b >= '0' && b <= '9' && good[i] >= '0' && good[i] <= '9';
      bool day_name = i < 3;  // "Mon", "Sat" and so on: not checked against the date
      CHECK((digit || day_name));
      if (day_name) CHECK(parse(s) == std::optional<std::time_t>(784111777));
    }
  }
  CHECK(accepted > 0);
}

TEST_CASE("http date: every prefix of a valid date is rejected without reading past it") {
  for (std::string_view full : {std::string_view("Sun, 06 Nov 1994 08:49:37 GMT"),
                                std::string_view("Sunday, 06-Nov-94 08:49:37 GMT"),
                                std::string_view("Sun Nov  6 08:49:37 1994")}) {
    for (size_t n = 0; n < full.size(); ++n) {
      CAPTURE(full.substr(0, n));
      CHECK_FALSE(parse(full.substr(0, n)).has_value());
    }
    CHECK(parse(full).has_value());
  }
}

TEST_CASE("http date: RFC 850 years more than 50 years ahead are in the past century") {
  int year = current_year();
  struct YearRow {
    int offset;    // the two digits are those of year + offset
    int expected;  // read as year + expected
  };
  const YearRow rows[] = {
      {0, 0},     {1, 1},     {10, 10},   {49, 49},   {50, 50},  // up to 50 ahead: ahead
      {51, -49},  {60, -40},  {99, -1},                          // more: the past
      {-1, -1},   {-10, -10}, {-49, -49},
  };
  for (const YearRow& row : rows) {
    int two = ((year + row.offset) % 100 + 100) % 100;
    int expect_year = year + row.expected;
    char text[64], want[64];
    std::snprintf(text, sizeof text, "Monday, 15-Mar-%02d 12:00:00 GMT", two);
    std::snprintf(want, sizeof want, "Mon, 15 Mar %04d 12:00:00 GMT", expect_year);
    CAPTURE(text);
    CAPTURE(want);
    std::optional<std::time_t> got = parse(text);
    REQUIRE(got.has_value());
    CHECK(parse(want) == got);
  }
  // RFC 9110's example, while 1994 is the reading (until 2044).
  if (year < 2044) CHECK(parse("Sunday, 06-Nov-94 08:49:37 GMT") == std::optional<std::time_t>(784111777));
  // Day ranges follow the century the year lands in: 2000 is a leap year, 2001 not.
  if (year < 2050) CHECK(parse("Tuesday, 29-Feb-00 08:49:37 GMT").has_value());
  CHECK_FALSE(parse("Thursday, 29-Feb-01 08:49:37 GMT").has_value());
}

TEST_CASE("http date: format and parse round-trip over many times, in all three layouts") {
  std::mt19937_64 rng(784111777);
  int year = current_year();
  std::vector<std::time_t> times = {0, -1, 1, kYear0, kYear0 + 1, 253402300799, 2147483647,
                                    2147483648, 951782400, 951868799, 4107542399, 4107542400};
  for (int i = 0; i < 200000; ++i)
    times.push_back(kYear0 + std::time_t(rng() % uint64_t(253402300799 - kYear0 + 1)));
  for (int i = 0; i < 20000; ++i)  // around now, where the two-digit years land
    times.push_back(std::time(nullptr) - 40 * 31556952 + std::time_t(rng() % (80ull * 31556952)));
  size_t rfc850 = 0;
  for (std::time_t t : times) {
    char buf[kHttpDateSize];
    format_http_date(t, buf);
    std::string imf(buf, kHttpDateSize);
    std::optional<std::time_t> back = parse(imf);
    if (!back || *back != t) {
      CAPTURE(t);
      CAPTURE(imf);
      CHECK(back == std::optional<std::time_t>(t));
    }
    std::string asc = asctime_of(t);
    if (parse(asc) != std::optional<std::time_t>(t)) {
      CAPTURE(asc);
      CHECK(parse(asc) == std::optional<std::time_t>(t));
    }
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    int y = tm.tm_year + 1900;
    if (y > year - 50 && y <= year + 50) {
      ++rfc850;
      std::string obs = rfc850_of(t);
      if (parse(obs) != std::optional<std::time_t>(t)) {
        CAPTURE(obs);
        CHECK(parse(obs) == std::optional<std::time_t>(t));
      }
    }
  }
  CHECK(rfc850 > 20000);
}

TEST_CASE("http date: parse_http_date does not depend on TZ") {
  const char* old = std::getenv("TZ");
  std::string saved = old ? old : "";
  for (const char* tz : {"America/New_York", "Asia/Kolkata", "UTC+12", "Europe/London"}) {
    CAPTURE(tz);
    ::setenv("TZ", tz, 1);
    ::tzset();
    CHECK(parse("Sun, 06 Nov 1994 08:49:37 GMT") == std::optional<std::time_t>(784111777));
    CHECK(parse("Sun Nov  6 08:49:37 1994") == std::optional<std::time_t>(784111777));
  }
  if (old) ::setenv("TZ", saved.c_str(), 1);
  else ::unsetenv("TZ");
  ::tzset();
}
