// IMF-fixdate formatting (RFC 9110 §5.6.7) and the per-loop Date header cache.
#pragma once

#include <array>
#include <chrono>
#include <ctime>
#include <optional>
#include <string_view>

namespace netloop::http {

inline constexpr size_t kHttpDateSize = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT"

// Writes the 29 characters for `t` into `out`.
void format_http_date(std::time_t t, char* out) noexcept;

// Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and
// the two obsolete forms a recipient must accept, RFC 850 ("Sunday, 06-Nov-94 08:49:37
// GMT"; a two-digit year more than 50 years ahead is read as the past century) and asctime
// ("Sun Nov  6 08:49:37 1994"). Day and month names are case-sensitive as the grammar has
// them; the day name is not checked against the date. nullopt for anything else: another
// layout, a field out of range (hour 24, 31 Feb, second 61), trailing bytes.
std::optional<std::time_t> parse_http_date(std::string_view s) noexcept;

// The current date, formatted at most once per second (a wall-clock read per call is a
// vDSO call of a few nanoseconds; formatting is what is saved).
class DateCache {
 public:
  // Reads the wall clock.
  std::string_view now() noexcept;
  // Reads the wall clock only when `loop_now` (a loop's cached steady time, which moves
  // once per loop iteration) has moved since the last call: one clock read per batch of
  // responses, as nginx updates its time once per event-loop iteration. A caller whose
  // time stands still (a fake clock) gets the date of the last read until it moves.
  std::string_view at(std::chrono::steady_clock::time_point loop_now) noexcept {
    if (loop_now != checked_at_ || second_ < 0) {
      checked_at_ = loop_now;
      return now();
    }
    return {text_.data(), text_.size()};
  }
  // The second now() last formatted.
  std::time_t second() const noexcept { return second_; }

 private:
  std::time_t second_ = -1;
  std::chrono::steady_clock::time_point checked_at_{};
  std::array<char, kHttpDateSize> text_{};
};

}  // namespace netloop::http
