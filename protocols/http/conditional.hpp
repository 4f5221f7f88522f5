// Conditional requests (RFC 9110 §13): entity-tag lists and dates compared with the
// validators of the representation a GET or HEAD selected. Pure: no I/O, no allocation.
#pragma once

#include <cstdint>
#include <ctime>
#include <string_view>

#include "http/request_parser.hpp"

namespace netloop::http {

// The validators of the selected representation.
struct Validators {
  std::string_view etag;      // a strong entity-tag with its quotes: "\"5f1e-3a\""
  std::time_t last_modified;  // seconds since the epoch
  // Last-Modified is a strong validator (RFC 9110 §8.8.2.2): the file had not changed for
  // at least a second when it was read, so no other version can share that date. If-Range
  // honours a date only then.
  bool last_modified_strong = true;
};

enum class Precondition : uint8_t {
  proceed,       // answer normally (200, or 206 if a Range applies)
  not_modified,  // 304
  failed,        // 412
};

// If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since of `req` (a GET or
// HEAD of an existing representation), evaluated in the order of RFC 9110 §13.2.2:
// 1. If-Match present: false (no entity-tag in the list matches by strong comparison, and
//    the list is not "*") gives `failed`.
// 2. Else If-Unmodified-Since present and a valid date: Last-Modified later than it gives
//    `failed`. An invalid date is ignored.
// 3. If-None-Match present: a match (weak comparison, or "*") gives `not_modified`.
// 4. Else If-Modified-Since present and a valid date: Last-Modified not later than it
//    gives `not_modified`. An invalid date is ignored.
// A list field sent on several lines counts as one list. A malformed If-Match matches
// nothing (412); a malformed If-None-Match matches nothing (the representation is sent).
Precondition evaluate_preconditions(const Request& req, const Validators& v) noexcept;

// If-Range (RFC 9110 §13.1.5): true when a Range in `req` may be honoured: no If-Range,
// an entity-tag equal to `v.etag` by strong comparison (a weak tag never is), or an
// HTTP-date exactly equal to a strong Last-Modified. Anything else (another tag, another or
// invalid date, a repeated If-Range) is false: the whole representation is sent (200).
bool if_range_allows(const Request& req, const Validators& v) noexcept;

// Whether the entity-tag list `list` (the value of If-Match or If-None-Match: "*" or
// entity-tags separated by commas with optional whitespace, empty elements allowed)
// contains `etag`. Strong comparison: both tags strong and their opaque-tags equal; weak:
// opaque-tags equal, W/ ignored on either side. "*" matches any. A malformed element
// (no quotes, a quote inside, bytes after the closing quote) ends the scan: elements
// before it still count.
bool etag_list_contains(std::string_view list, std::string_view etag, bool weak) noexcept;

}  // namespace netloop::http
