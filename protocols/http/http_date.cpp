// format_http_date and DateCache.
#include "http/http_date.hpp"

#include <time.h>

namespace netloop::http {
namespace {

void put2(char* p, int v) noexcept {
  p[0] = char('0' + v / 10);
  p[1] = char('0' + v % 10);
}

}  // namespace

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
