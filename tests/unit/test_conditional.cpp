// Unit tests for conditional requests (protocols/http/conditional.cpp): tables for
// etag_list_contains, evaluate_preconditions (the order of RFC 9110 §13.2.2) and
// if_range_allows. Every field value is copied to a heap block of exactly its size, so
// under ASan a read past its end is reported.
#include <doctest/doctest.h>

#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/conditional.hpp"
#include "http/http_date.hpp"

using netloop::http::etag_list_contains;
using netloop::http::evaluate_preconditions;
using netloop::http::FieldRef;
using netloop::http::format_http_date;
using netloop::http::if_range_allows;
using netloop::http::iequals;
using netloop::http::kHttpDateSize;
using netloop::http::Method;
using netloop::http::Precondition;
using netloop::http::Request;
using netloop::http::Validators;

namespace {

std::string_view pc_name(Precondition p) {
  switch (p) {
    case Precondition::proceed: return "proceed";
    case Precondition::not_modified: return "not_modified";
    case Precondition::failed: return "failed";
  }
  return "Precondition(?)";
}

// Exactly-sized heap copies that outlive the views into them.
class ExactCopies {
 public:
  std::string_view add(std::string_view s) {
    blocks_.push_back(std::make_unique<char[]>(s.size()));
    if (!s.empty()) std::memcpy(blocks_.back().get(), s.data(), s.size());
    return {blocks_.back().get(), s.size()};
  }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
};

using Lines = std::vector<std::pair<std::string, std::string>>;

// A Request as the parser leaves it: every line in `headers`, and the FieldRef of each
// conditional field holding its first value and its line count.
struct Built {
  ExactCopies copies;
  Request req;
};

void build(Built& b, const Lines& lines, Method method) {
  Request& r = b.req;
  r.method = method;
  r.header_count = 0;
  struct Known {
    std::string_view name;
    FieldRef Request::*ref;
  };
  static const Known kKnown[] = {
      {"if-match", &Request::if_match},
      {"if-none-match", &Request::if_none_match},
      {"if-modified-since", &Request::if_modified_since},
      {"if-unmodified-since", &Request::if_unmodified_since},
      {"if-range", &Request::if_range},
      {"range", &Request::range},
      {"accept-encoding", &Request::accept_encoding},
  };
  for (const auto& [name, value] : lines) {
    std::string_view n = b.copies.add(name), v = b.copies.add(value);
    r.headers[r.header_count++] = {n, v};
    for (const Known& k : kKnown) {
      if (!iequals(n, k.name)) continue;
      FieldRef& f = r.*k.ref;
      if (f.count == 0) f.value = v;
      ++f.count;
    }
  }
}

std::string date(std::time_t t) {
  char buf[kHttpDateSize];
  format_http_date(t, buf);
  return std::string(buf, kHttpDateSize);
}

constexpr std::time_t kLastModified = 1700000000;  // Tue, 14 Nov 2023 22:13:20 GMT
const std::string kAtLm = date(kLastModified);
const std::string kBefore = date(kLastModified - 1);
const std::string kAfter = date(kLastModified + 1);
const std::string kEtag = "\"v1\"";
const Validators kV{kEtag, kLastModified};

struct ListRow {
  std::string list;
  std::string etag;
  bool strong;  // etag_list_contains(list, etag, false)
  bool weak;    // etag_list_contains(list, etag, true)
};

const ListRow kListRows[] = {
    // RFC 9110 §8.8.3.2's comparison table.
    {"W/\"1\"", "W/\"1\"", false, true},
    {"W/\"1\"", "W/\"2\"", false, false},
    {"W/\"1\"", "\"1\"", false, true},
    {"\"1\"", "\"1\"", true, true},
    {"\"1\"", "W/\"1\"", false, true},
    {"\"1\"", "\"2\"", false, false},
    // Opaque-tags compare byte for byte, quotes included.
    {"\"ABC\"", "\"abc\"", false, false},
    {"\"\"", "\"\"", true, true},
    {"\"\"", "\"a\"", false, false},
    {"\"a\"", "\"a \"", false, false},  // the etag itself is malformed: matches only "*"
    {"\"a,b\"", "\"a,b\"", true, true},  // a comma is an etagc
    {"\"a,b\"", "\"a\"", false, false},
    {"\"a,b\"", "\"b\"", false, false},
    {"\"\xe9t\xe9\"", "\"\xe9t\xe9\"", true, true},  // obs-text
    {"\"!#~\"", "\"!#~\"", true, true},
    // "*" matches any tag, even none.
    {"*", "\"x\"", true, true},
    {"*", "W/\"x\"", true, true},
    {"*", "", true, true},
    {" * ", "\"x\"", true, true},
    {"\t*", "\"x\"", true, true},
    {"**", "\"x\"", false, false},
    {"*, \"x\"", "\"x\"", false, false},  // "*" in a list is malformed and ends it
    {"\"x\", *", "\"x\"", true, true},      // but elements before it count
    {"\"y\", *", "\"x\"", false, false},
    // Lists, OWS and empty elements.
    {"\"a\", \"b\", \"c\"", "\"a\"", true, true},
    {"\"a\", \"b\", \"c\"", "\"b\"", true, true},
    {"\"a\", \"b\", \"c\"", "\"c\"", true, true},
    {"\"a\", \"b\", \"c\"", "\"d\"", false, false},
    {"\"a\",\"b\"", "\"b\"", true, true},
    {"\"a\" ,\t\"b\"", "\"b\"", true, true},
    {"\"a\" \t, \"b\" \t", "\"b\"", true, true},
    {"W/\"a\", W/\"b\"", "\"b\"", false, true},
    {"W/\"a\", \"b\"", "\"b\"", true, true},
    {"\"a\",,\"b\"", "\"b\"", true, true},
    {", \"b\"", "\"b\"", true, true},
    {",,\t, ,\"b\",", "\"b\"", true, true},
    {"\"b\",", "\"b\"", true, true},
    {",,,", "\"b\"", false, false},
    {"", "\"b\"", false, false},
    {" ", "\"b\"", false, false},
    // Malformed elements end the scan; elements before them count.
    {"b", "\"b\"", false, false},
    {"\"b", "\"b\"", false, false},
    {"b\"", "\"b\"", false, false},
    {"\"b\"x", "\"b\"", false, false},  // bytes after the closing quote spoil the element
    {"\"b\" x", "\"b\"", false, false},
    {"\"b\"\"c\"", "\"b\"", false, false},
    {"\"b\" \"c\"", "\"c\"", false, false},
    {"\"a\"x, \"b\"", "\"b\"", false, false},
    {"junk, \"b\"", "\"b\"", false, false},
    {"\"b\", junk", "\"b\"", true, true},
    {"\"a\", junk, \"b\"", "\"b\"", false, false},
    {"\"a b\"", "\"a b\"", false, false},  // a space is no etagc
    {"\"x\", \"a b\"", "\"x\"", true, true},
    {"\"a\tb\"", "\"a\tb\"", false, false},
    {"\"a\x01\"", "\"a\x01\"", false, false},
    {"\"a\x7f\"", "\"a\x7f\"", false, false},
    {"w/\"b\"", "\"b\"", false, false},  // W/ is case-sensitive
    {"W/ \"b\"", "\"b\"", false, false},
    {"W/b", "\"b\"", false, false},
    {"W/", "\"b\"", false, false},
    {"W", "\"b\"", false, false},
    {"\"", "\"b\"", false, false},
    {"W/\"", "\"b\"", false, false},
};

struct PreRow {
  std::string name;
  Lines lines;
  Precondition expect;
  Method method = Method::get;
};

std::vector<PreRow> pre_rows() {
  using P = Precondition;
  return {
      {"no conditional fields", {}, P::proceed},
      {"other fields only", {{"Host", "h"}, {"Range", "bytes=0-1"}, {"If-Range", "\"zz\""}}, P::proceed},
      // 1. If-Match: strong comparison.
      {"If-Match equal", {{"If-Match", kEtag}}, P::proceed},
      {"If-Match other", {{"If-Match", "\"v2\""}}, P::failed},
      {"If-Match star", {{"If-Match", "*"}}, P::proceed},
      {"If-Match weak tag never matches", {{"If-Match", "W/\"v1\""}}, P::failed},
      {"If-Match in a list", {{"If-Match", "\"x\", \"v1\""}}, P::proceed},
      {"If-Match malformed", {{"If-Match", "v1"}}, P::failed},
      {"If-Match empty", {{"If-Match", ""}}, P::failed},
      {"If-Match name case", {{"if-MATCH", kEtag}}, P::proceed},
      {"If-Match on two lines, match on the second", {{"If-Match", "\"x\""}, {"If-Match", kEtag}}, P::proceed},
      {"If-Match on two lines, malformed first ends the list",
       {{"If-Match", "junk"}, {"If-Match", kEtag}}, P::failed},
      {"If-Match on two lines, malformed after the match",
       {{"If-Match", kEtag}, {"If-Match", "junk"}}, P::proceed},
      {"If-Match on two lines, empty first", {{"If-Match", ""}, {"if-match", kEtag}}, P::proceed},
      {"If-Match on two lines, star second", {{"If-Match", "\"x\""}, {"If-Match", "*"}}, P::proceed},
      {"If-Match on three lines, none matching",
       {{"If-Match", "\"x\""}, {"If-Match", "\"y\""}, {"If-Match", "\"z\""}}, P::failed},
      // 2. If-Unmodified-Since, only without If-Match.
      {"If-Unmodified-Since at Last-Modified", {{"If-Unmodified-Since", kAtLm}}, P::proceed},
      {"If-Unmodified-Since after", {{"If-Unmodified-Since", kAfter}}, P::proceed},
      {"If-Unmodified-Since before", {{"If-Unmodified-Since", kBefore}}, P::failed},
      {"If-Unmodified-Since asctime before",
       {{"If-Unmodified-Since", "Tue Nov 14 22:13:19 2023"}}, P::failed},
      {"If-Unmodified-Since asctime at", {{"If-Unmodified-Since", "Tue Nov 14 22:13:20 2023"}}, P::proceed},
      {"If-Unmodified-Since invalid is ignored", {{"If-Unmodified-Since", "yesterday"}}, P::proceed},
      {"If-Unmodified-Since lower-case GMT is invalid",
       {{"If-Unmodified-Since", "Tue, 14 Nov 2023 22:13:19 gmt"}}, P::proceed},
      {"If-Unmodified-Since repeated is ignored",
       {{"If-Unmodified-Since", kBefore}, {"If-Unmodified-Since", kBefore}}, P::proceed},
      {"If-Match decides, If-Unmodified-Since not read",
       {{"If-Match", kEtag}, {"If-Unmodified-Since", kBefore}}, P::proceed},
      {"If-Match fails whatever If-Unmodified-Since says",
       {{"If-Match", "\"x\""}, {"If-Unmodified-Since", kAfter}}, P::failed},
      // 3. If-None-Match: weak comparison.
      {"If-None-Match equal", {{"If-None-Match", kEtag}}, P::not_modified},
      {"If-None-Match weak", {{"If-None-Match", "W/\"v1\""}}, P::not_modified},
      {"If-None-Match star", {{"If-None-Match", "*"}}, P::not_modified},
      {"If-None-Match other", {{"If-None-Match", "\"v2\""}}, P::proceed},
      {"If-None-Match in a list", {{"If-None-Match", "\"a\", W/\"v1\", \"b\""}}, P::not_modified},
      {"If-None-Match malformed", {{"If-None-Match", "v1"}}, P::proceed},
      {"If-None-Match empty", {{"If-None-Match", ""}}, P::proceed},
      {"If-None-Match on two lines", {{"If-None-Match", "\"a\""}, {"If-None-Match", kEtag}}, P::not_modified},
      {"If-None-Match on two lines, malformed first",
       {{"If-None-Match", "\"a\" junk"}, {"If-None-Match", kEtag}}, P::proceed},
      {"If-None-Match on two lines, neither", {{"If-None-Match", "\"a\""}, {"If-None-Match", "\"b\""}}, P::proceed},
      {"If-None-Match with HEAD", {{"If-None-Match", kEtag}}, P::not_modified, Method::head},
      {"If-None-Match with another method is 412", {{"If-None-Match", kEtag}}, P::failed, Method::post},
      // Step 1 before step 3.
      {"If-Match failure beats If-None-Match", {{"If-Match", "\"x\""}, {"If-None-Match", kEtag}}, P::failed},
      {"If-Match and If-None-Match both match", {{"If-Match", kEtag}, {"If-None-Match", kEtag}}, P::not_modified},
      {"If-Match star and If-None-Match star", {{"If-Match", "*"}, {"If-None-Match", "*"}}, P::not_modified},
      {"If-Unmodified-Since failure beats If-None-Match",
       {{"If-None-Match", kEtag}, {"If-Unmodified-Since", kBefore}}, P::failed},
      // 4. If-Modified-Since, only without If-None-Match.
      {"If-Modified-Since at Last-Modified", {{"If-Modified-Since", kAtLm}}, P::not_modified},
      {"If-Modified-Since after", {{"If-Modified-Since", kAfter}}, P::not_modified},
      {"If-Modified-Since before", {{"If-Modified-Since", kBefore}}, P::proceed},
      {"If-Modified-Since RFC 850 far before", {{"If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT"}},
       P::proceed},
      {"If-Modified-Since invalid is ignored", {{"If-Modified-Since", "Tue, 14 Nov 2023 25:00:00 GMT"}},
       P::proceed},
      {"If-Modified-Since with trailing bytes is invalid", {{"If-Modified-Since", kAtLm + "x"}}, P::proceed},
      {"If-Modified-Since repeated is ignored",
       {{"If-Modified-Since", kAtLm}, {"If-Modified-Since", kAtLm}}, P::proceed},
      {"If-Modified-Since with HEAD", {{"If-Modified-Since", kAtLm}}, P::not_modified, Method::head},
      {"If-Modified-Since with another method is ignored", {{"If-Modified-Since", kAtLm}}, P::proceed,
       Method::post},
      {"If-None-Match beats If-Modified-Since (no match)",
       {{"If-None-Match", "\"v2\""}, {"If-Modified-Since", kAtLm}}, P::proceed},
      {"If-None-Match beats If-Modified-Since (match)",
       {{"If-None-Match", kEtag}, {"If-Modified-Since", kBefore}}, P::not_modified},
      {"a malformed If-None-Match still hides If-Modified-Since",
       {{"If-None-Match", "junk"}, {"If-Modified-Since", kAtLm}}, P::proceed},
      {"If-Unmodified-Since passes, If-Modified-Since says 304",
       {{"If-Unmodified-Since", kAtLm}, {"If-Modified-Since", kAtLm}}, P::not_modified},
      {"If-Unmodified-Since fails before If-Modified-Since is read",
       {{"If-Unmodified-Since", kBefore}, {"If-Modified-Since", kAtLm}}, P::failed},
      {"If-Match passes, If-Modified-Since says 304",
       {{"If-Match", kEtag}, {"If-Modified-Since", kAfter}}, P::not_modified},
      {"all four, all passing to 304",
       {{"If-Match", "*"}, {"If-Unmodified-Since", kAfter}, {"If-None-Match", "W/\"v1\""},
        {"If-Modified-Since", kBefore}},
       P::not_modified},
  };
}

struct RangeRow {
  std::string name;
  Lines lines;
  bool allows;
  std::string etag = kEtag;
};

std::vector<RangeRow> range_rows() {
  return {
      {"no If-Range", {{"Range", "bytes=0-1"}}, true},
      {"same strong tag", {{"If-Range", kEtag}}, true},
      {"a weak tag never", {{"If-Range", "W/\"v1\""}}, false},
      {"another tag", {{"If-Range", "\"v2\""}}, false},
      {"tag case", {{"If-Range", "\"V1\""}}, false},
      {"own tag weak", {{"If-Range", "\"v1\""}}, false, "W/\"v1\""},
      {"own tag weak, sent weak", {{"If-Range", "W/\"v1\""}}, false, "W/\"v1\""},
      {"own tag missing", {{"If-Range", "\"v1\""}}, false, ""},
      {"a list is not an entity-tag", {{"If-Range", "\"v1\", \"v2\""}}, false},
      {"bytes after the tag", {{"If-Range", "\"v1\"x"}}, false},
      {"unterminated tag", {{"If-Range", "\"v1"}}, false},
      {"star", {{"If-Range", "*"}}, false},
      {"empty", {{"If-Range", ""}}, false},
      {"lower-case w/ is no tag and no date", {{"If-Range", "w/\"v1\""}}, false},
      {"the date of Last-Modified", {{"If-Range", kAtLm}}, true},
      {"the date in asctime", {{"If-Range", "Tue Nov 14 22:13:20 2023"}}, true},
      {"a second before", {{"If-Range", kBefore}}, false},
      {"a second after", {{"If-Range", kAfter}}, false},
      {"an invalid date", {{"If-Range", "Tue, 14 Nov 2023 22:13:20 UTC"}}, false},
      {"repeated, both equal", {{"If-Range", kEtag}, {"If-Range", kEtag}}, false},
      {"repeated date", {{"If-Range", kAtLm}, {"if-range", kAtLm}}, false},
  };
}

}  // namespace

TEST_CASE("conditional: etag_list_contains table, strong and weak") {
  for (const ListRow& row : kListRows) {
    CAPTURE(row.list);
    CAPTURE(row.etag);
    ExactCopies c;
    std::string_view list = c.add(row.list), etag = c.add(row.etag);
    CHECK(etag_list_contains(list, etag, false) == row.strong);
    CHECK(etag_list_contains(list, etag, true) == row.weak);
    // A strong match is always a weak one.
    CHECK((!row.strong || row.weak));
  }
}

TEST_CASE("conditional: every prefix of a list is scanned without reading past it") {
  const std::string full = "W/\"a\", \"b,c\" ,, \"v1\"";
  for (size_t n = 0; n <= full.size(); ++n) {
    ExactCopies c;
    std::string_view list = c.add(std::string_view(full).substr(0, n));
    CAPTURE(list);
    CHECK(etag_list_contains(list, kEtag, true) == (n == full.size()));
    CHECK(etag_list_contains(list, "W/\"a\"", true) == (n >= 5));
  }
}

TEST_CASE("conditional: evaluate_preconditions table (RFC 9110 13.2.2)") {
  for (const PreRow& row : pre_rows()) {
    CAPTURE(row.name);
    Built b;
    build(b, row.lines, row.method);
    CHECK(pc_name(evaluate_preconditions(b.req, kV)) == pc_name(row.expect));
  }
}

TEST_CASE("conditional: if_range_allows table") {
  for (const RangeRow& row : range_rows()) {
    CAPTURE(row.name);
    Built b;
    build(b, row.lines, Method::get);
    Validators v{row.etag, kLastModified};
    CHECK(if_range_allows(b.req, v) == row.allows);
  }
}

TEST_CASE("conditional: dates compare by the second, across the range of Last-Modified") {
  for (std::time_t lm : {std::time_t(0), std::time_t(784111777), std::time_t(2147483648),
                         std::time_t(253402300797)}) {
    CAPTURE(lm);
    Validators v{kEtag, lm};
    for (int d = -2; d <= 2; ++d) {
      CAPTURE(d);
      std::string when = date(lm + d);
      Built ims, ius, ir;
      build(ims, {{"If-Modified-Since", when}}, Method::get);
      build(ius, {{"If-Unmodified-Since", when}}, Method::get);
      build(ir, {{"If-Range", when}}, Method::get);
      CHECK(pc_name(evaluate_preconditions(ims.req, v)) ==
            pc_name(d >= 0 ? Precondition::not_modified : Precondition::proceed));
      CHECK(pc_name(evaluate_preconditions(ius.req, v)) ==
            pc_name(d >= 0 ? Precondition::proceed : Precondition::failed));
      CHECK(if_range_allows(ir.req, v) == (d == 0));
    }
  }
}
