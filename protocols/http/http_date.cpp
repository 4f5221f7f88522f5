// format_http_date, parse_http_date and DateCache.
#include "http/http_date.hpp"

#include <cstdint>

#include <time.h>

namespace netloop::http {
namespace {

void put2(char* p, int v) noexcept {
  p[0] = char('0' + v / 10);
  p[1] = char('0' + v % 10);
}

constexpr std::string_view kShortDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::string_view kLongDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};
constexpr std::string_view kMonthNames = "JanFebMarAprMayJunJulAugSepOctNovDec";

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil):
// no libc, so neither the locale nor TZ can change the result.
constexpr int64_t days_from_civil(int64_t y, int64_t m, int64_t d) noexcept {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}
static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(days_from_civil(2000, 3, 1) == 11017);

// The Gregorian year of `t` (the inverse of days_from_civil, its year only).
int64_t year_of(std::time_t t) noexcept {
  int64_t z = (t >= 0 ? t : t - 86399) / 86400 + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  return yoe + era * 400 + (mp >= 10 ? 1 : 0);
}

constexpr bool is_leap(int64_t y) noexcept { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

int days_in_month(int64_t y, int m) noexcept {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

struct DateFields {
  int64_t year = 0;
  int month = 0;  // 1..12
  int day = 0, hour = 0, minute = 0, second = 0;
};

// A left-to-right reader over the date; every step checks its bounds, so an input cut
// anywhere fails without reading past its end.
class DateReader {
 public:
  explicit DateReader(std::string_view s) noexcept : s_(s) {}

  bool literal(std::string_view x) noexcept {
    if (s_.substr(pos_, x.size()) != x) return false;
    pos_ += x.size();
    return true;
  }
  // Exactly `n` decimal digits.
  bool number(size_t n, int& out) noexcept {
    if (s_.size() - pos_ < n) return false;
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s_[pos_ + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos_ += n;
    out = v;
    return true;
  }
  bool short_day() noexcept {
    for (std::string_view d : kShortDays)
      if (literal(d)) return true;
    return false;
  }
  bool long_day() noexcept {
    for (std::string_view d : kLongDays)
      if (literal(d)) return true;
    return false;
  }
  bool month(int& out) noexcept {
    std::string_view m = s_.substr(pos_, 3);
    if (m.size() != 3) return false;
    for (int i = 0; i < 12; ++i) {
      if (m == kMonthNames.substr(size_t(i) * 3, 3)) {
        pos_ += 3;
        out = i + 1;
        return true;
      }
    }
    return false;
  }
  // hour ":" minute ":" second, range-checked later.
  bool time_of_day(DateFields& f) noexcept {
    return number(2, f.hour) && literal(":") && number(2, f.minute) && literal(":") &&
           number(2, f.second);
  }
  bool at_end() const noexcept { return pos_ == s_.size(); }
  // The next byte is `c` (without consuming it).
  bool next_is(char c) const noexcept { return pos_ < s_.size() && s_[pos_] == c; }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

// "Sun, 06 Nov 1994 08:49:37 GMT"
bool read_imf_fixdate(DateReader& r, DateFields& f) noexcept {
  int year = 0;
  bool ok = r.short_day() && r.literal(", ") && r.number(2, f.day) && r.literal(" ") &&
            r.month(f.month) && r.literal(" ") && r.number(4, year) && r.literal(" ") &&
            r.time_of_day(f) && r.literal(" GMT") && r.at_end();
  f.year = year;
  return ok;
}

// "Sunday, 06-Nov-94 08:49:37 GMT"
bool read_rfc850_date(DateReader& r, DateFields& f) noexcept {
  int yy = 0;
  if (!(r.long_day() && r.literal(", ") && r.number(2, f.day) && r.literal("-") &&
        r.month(f.month) && r.literal("-") && r.number(2, yy) && r.literal(" ") &&
        r.time_of_day(f) && r.literal(" GMT") && r.at_end()))
    return false;
  // RFC 9110 §5.6.7: a year that appears more than 50 years in the future is the most
  // recent past year with the same last two digits. Judged by whole years, within the
  // hundred years (now - 50, now + 50].
  int64_t now = year_of(std::time(nullptr));
  int64_t y = now - now % 100 + yy;
  if (y > now + 50) y -= 100;
  else if (y <= now - 50) y += 100;
  f.year = y;
  return true;
}

// "Sun Nov  6 08:49:37 1994" (the day is 2DIGIT or SP DIGIT)
bool read_asctime_date(DateReader& r, DateFields& f) noexcept {
  int year = 0;
  if (!(r.short_day() && r.literal(" ") && r.month(f.month) && r.literal(" "))) return false;
  bool day = r.next_is(' ') ? r.literal(" ") && r.number(1, f.day) : r.number(2, f.day);
  bool ok = day && r.literal(" ") && r.time_of_day(f) && r.literal(" ") && r.number(4, year) &&
            r.at_end();
  f.year = year;
  return ok;
}

// Seconds since the epoch, or nullopt for a field out of range. Second 60 (a leap second,
// which the grammar allows) has no time_t of its own: it is read as second 59, so a date
// never moves into the next day (nor "31 Dec 9999" past what format_http_date can write).
std::optional<std::time_t> to_time(const DateFields& f) noexcept {
  if (f.month < 1 || f.month > 12 || f.day < 1 || f.day > days_in_month(f.year, f.month) ||
      f.hour > 23 || f.minute > 59 || f.second > 60)
    return std::nullopt;
  int64_t days = days_from_civil(f.year, f.month, f.day);
  int second = f.second == 60 ? 59 : f.second;
  return std::time_t(days * 86400 + f.hour * 3600 + f.minute * 60 + second);
}

}  // namespace

std::optional<std::time_t> parse_http_date(std::string_view s) noexcept {
  // The fourth byte tells the layouts apart: ',' after a short day name (IMF-fixdate), ' '
  // (asctime), a letter of a long day name (RFC 850).
  if (s.size() < 4) return std::nullopt;
  DateReader r(s);
  DateFields f;
  bool ok = s[3] == ',' ? read_imf_fixdate(r, f)
            : s[3] == ' ' ? read_asctime_date(r, f)
                          : read_rfc850_date(r, f);
  if (!ok) return std::nullopt;
  return to_time(f);
}

void format_http_date(std::time_t t, char* out) noexcept {
  static constexpr char kDays[] = "SunMonTueWedThuFriSat";
  static constexpr char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char* p = out;
  for (int i = 0; i < 3; ++i) *p++ = kDays[tm.tm_wday * 3 + i];
  *p++ = ',';
  *p++ = ' ';
  put2(p, tm.tm_mday);
  p += 2;
  *p++ = ' ';
  for (int i = 0; i < 3; ++i) *p++ = kMonths[tm.tm_mon * 3 + i];
  *p++ = ' ';
  int year = tm.tm_year + 1900;
  if (year < 0) year = 0;
  if (year > 9999) year = 9999;
  put2(p, year / 100);
  put2(p + 2, year % 100);
  p += 4;
  *p++ = ' ';
  put2(p, tm.tm_hour);
  p[2] = ':';
  put2(p + 3, tm.tm_min);
  p[5] = ':';
  put2(p + 6, tm.tm_sec);
  p += 8;
  *p++ = ' ';
  *p++ = 'G';
  *p++ = 'M';
  *p++ = 'T';
}

std::string_view DateCache::now() noexcept {
  timespec ts{};
#ifdef CLOCK_REALTIME_COARSE
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
#else
  ::clock_gettime(CLOCK_REALTIME, &ts);
#endif
  if (ts.tv_sec != second_) {
    second_ = ts.tv_sec;
    format_http_date(second_, text_.data());
  }
  return {text_.data(), text_.size()};
}

}  // namespace netloop::http
