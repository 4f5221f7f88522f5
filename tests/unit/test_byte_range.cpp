// Unit tests for parse_range (protocols/http/byte_range.cpp): a table of Range values and
// lengths, then random sets checked against a byte-by-byte model. Every input is copied to
// a heap block of exactly its size, so under ASan a read past its end is reported.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "http/byte_range.hpp"

using netloop::http::ByteRange;
using netloop::http::kMaxRanges;
using netloop::http::kMaxRangeSpecs;
using netloop::http::parse_range;
using netloop::http::RangeSet;
using Kind = netloop::http::RangeSet::Kind;

namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::ignore: return "ignore";
    case Kind::satisfiable: return "satisfiable";
    case Kind::unsatisfiable: return "unsatisfiable";
  }
  return "Kind(?)";
}

// parse_range over an exactly-sized heap copy of `value`.
RangeSet parse_exact(std::string_view value, uint64_t length) {
  std::vector<char> bytes(value.begin(), value.end());
  return parse_range(std::string_view(bytes.data(), bytes.size()), length);
}

struct Row {
  std::string value;
  uint64_t length;
  Kind kind;
  std::vector<ByteRange> ranges;  // satisfiable: exactly these
};

Row sat(std::string value, uint64_t length, std::vector<ByteRange> ranges) {
  return {std::move(value), length, Kind::satisfiable, std::move(ranges)};
}
Row unsat(std::string value, uint64_t length) {
  return {std::move(value), length, Kind::unsatisfiable, {}};
}
Row ignored(std::string value, uint64_t length = 1000) {
  return {std::move(value), length, Kind::ignore, {}};
}

// "a-b,c-d,..." for `n` specs: spec i is `spec(i)`.
template <class Fn>
std::string spec_list(size_t n, Fn spec) {
  std::string s = "bytes=";
  for (size_t i = 0; i < n; ++i) s += (i ? "," : "") + spec(i);
  return s;
}
std::string span(uint64_t a, uint64_t b) { return std::to_string(a) + "-" + std::to_string(b); }

std::vector<Row> table() {
  std::vector<Row> t = {
      // RFC 9110 §14.1.2's examples, length 10000.
      sat("bytes=0-499", 10000, {{0, 499}}),
      sat("bytes=500-999", 10000, {{500, 999}}),
      sat("bytes=-500", 10000, {{9500, 9999}}),
      sat("bytes=9500-", 10000, {{9500, 9999}}),
      sat("bytes=0-0,-1", 10000, {{0, 0}, {9999, 9999}}),
      sat("bytes=500-600,601-999", 10000, {{500, 999}}),  // adjacent: merged
      sat("bytes=500-700,601-999", 10000, {{500, 999}}),  // overlapping: merged
      // Clipping and bounds.
      sat("bytes=0-5000", 1000, {{0, 999}}),
      sat("bytes=0-999", 1000, {{0, 999}}),
      sat("bytes=999-999", 1000, {{999, 999}}),
      sat("bytes=999-", 1000, {{999, 999}}),
      sat("bytes=0-", 1000, {{0, 999}}),
      sat("bytes=-1000", 1000, {{0, 999}}),
      sat("bytes=-5000", 1000, {{0, 999}}),
      sat("bytes=-1", 1, {{0, 0}}),
      sat("bytes=0-0", 1, {{0, 0}}),
      sat("bytes=5-5", 1000, {{5, 5}}),
      // Sorting and merging.
      sat("bytes=0-1,3-4", 1000, {{0, 1}, {3, 4}}),  // one byte apart: kept apart
      sat("bytes=3-4,0-1", 1000, {{0, 1}, {3, 4}}),
      sat("bytes=0-1,2-3", 1000, {{0, 3}}),
      sat("bytes=2-3,0-1", 1000, {{0, 3}}),
      sat("bytes=0-10,2-3", 1000, {{0, 10}}),  // contained
      sat("bytes=2-3,0-10", 1000, {{0, 10}}),
      sat("bytes=0-1,0-1", 1000, {{0, 1}}),  // repeated
      sat("bytes=-500,9000-", 10000, {{9000, 9999}}),
      sat("bytes=900-,-200,0-0", 1000, {{0, 0}, {800, 999}}),
      sat("bytes=0-0,2-2,4-4,1-1", 1000, {{0, 2}, {4, 4}}),
      sat("bytes=0-,5-10", 1000, {{0, 999}}),
      // Unsatisfiable specs are dropped when another is satisfiable.
      sat("bytes=1000-,0-0", 1000, {{0, 0}}),
      sat("bytes=-0,5-6", 1000, {{5, 6}}),
      sat("bytes=2000-3000,10-", 1000, {{10, 999}}),
      // The unit ignores case.
      sat("Bytes=0-1", 1000, {{0, 1}}),
      sat("BYTES=0-1", 1000, {{0, 1}}),
      sat("bYtEs=0-1", 1000, {{0, 1}}),
      // OWS around commas, empty list elements.
      sat("bytes=0-1 , 3-4", 1000, {{0, 1}, {3, 4}}),
      sat("bytes=0-1,\t3-4", 1000, {{0, 1}, {3, 4}}),
      sat("bytes=0-1\t,3-4", 1000, {{0, 1}, {3, 4}}),
      sat("bytes=0-1 \t, \t3-4", 1000, {{0, 1}, {3, 4}}),
      sat("bytes=,0-1", 1000, {{0, 1}}),
      sat("bytes=0-1,", 1000, {{0, 1}}),
      sat("bytes=0-1, ", 1000, {{0, 1}}),
      sat("bytes=0-1 ", 1000, {{0, 1}}),
      sat("bytes=0-1,,3-4", 1000, {{0, 1}, {3, 4}}),
      sat("bytes=0-1, ,3-4", 1000, {{0, 1}, {3, 4}}),
      sat("bytes=, , ,0-1,,,", 1000, {{0, 1}}),
      // Numbers: up to 19 digits, leading zeros count.
      sat("bytes=0-9999999999999999999", 1000, {{0, 999}}),
      sat("bytes=-9999999999999999999", 1000, {{0, 999}}),
      sat("bytes=0000000000000000001-0000000000000000002", 1000, {{1, 2}}),
      sat("bytes=007-010", 1000, {{7, 10}}),
      unsat("bytes=9999999999999999999-", 1000),
      unsat("bytes=9999999999999999999-9999999999999999999", 1000),
      ignored("bytes=0-10000000000000000000"),  // 20 digits
      ignored("bytes=0-18446744073709551615"),  // 2^64 - 1: 20 digits
      ignored("bytes=0-18446744073709551616"),  // 2^64
      ignored("bytes=-10000000000000000000"),
      ignored("bytes=10000000000000000000-"),
      ignored("bytes=00000000000000000001-2"),
      ignored("bytes=0-99999999999999999999999999999999999999"),
      // The largest length.
      sat("bytes=0-", kMax, {{0, kMax - 1}}),
      sat("bytes=-1", kMax, {{kMax - 1, kMax - 1}}),
      sat("bytes=-9999999999999999999", kMax, {{kMax - 9999999999999999999u, kMax - 1}}),
      sat("bytes=9999999999999999999-", kMax, {{9999999999999999999u, kMax - 1}}),
      sat("bytes=0-9999999999999999999,-1", kMax, {{0, 9999999999999999999u}, {kMax - 1, kMax - 1}}),
      // Unsatisfiable.
      unsat("bytes=1000-", 1000),
      unsat("bytes=1000-2000", 1000),
      unsat("bytes=1000-1000", 1000),
      unsat("bytes=-0", 1000),
      unsat("bytes=-0,1000-,5000-6000", 1000),
      unsat("bytes=-00", 1000),
      unsat("bytes=0-", 0),
      unsat("bytes=0-0", 0),
      unsat("bytes=-1", 0),
      unsat("bytes=-0", 0),
      // Malformed: the whole set is ignored, whatever else it holds.
      ignored("bytes=1-0"),
      ignored("bytes=0-1,5-3"),
      ignored("bytes=2000-1000"),  // malformed beats unsatisfiable
      ignored("bytes=2000-1000", 0),
      ignored("bytes=-"),
      ignored("bytes=--1"),
      ignored("bytes=0--1"),
      ignored("bytes=a-1"),
      ignored("bytes=0-1a"),
      ignored("bytes=0-1,x"),
      ignored("bytes=+1-2"),
      ignored("bytes=0x1-2"),
      ignored("bytes=1.5-2"),
      ignored("bytes=0-1-2"),
      ignored("bytes=0-1;3-4"),
      ignored("bytes=0-1 3-4"),
      ignored("bytes=1"),
      ignored("bytes=-1-"),
      ignored("bytes=0- 1"),
      ignored("bytes=0 -1"),
      ignored("bytes= 0-1"),  // OWS is allowed around commas only
      ignored("bytes =0-1"),
      ignored("bytes:0-1"),
      ignored("bytes=0-1\r"),
      ignored(std::string("bytes=0-1\0", 10)),
      ignored("bytes="),
      ignored("bytes=,"),
      ignored("bytes=, ,"),
      ignored("bytes"),
      ignored("byte=0-1"),
      ignored("bytesx=0-1"),
      ignored("items=0-1"),
      ignored("bytes0-1"),
      ignored("=0-1"),
      ignored(""),
      ignored(" bytes=0-1"),
      ignored("bytes=\xff"),
  };

  // At most kMaxRanges ranges after merging.
  auto apart = [](size_t i) { return span(i * 10, i * 10 + 1); };
  std::vector<ByteRange> sixteen;
  for (size_t i = 0; i < kMaxRanges; ++i) sixteen.push_back({i * 10, i * 10 + 1});
  t.push_back(sat(spec_list(kMaxRanges, apart), 1000, sixteen));
  t.push_back(ignored(spec_list(kMaxRanges + 1, apart)));
  // The same, given backwards: sorted.
  t.push_back(sat(spec_list(kMaxRanges, [](size_t i) { return span(150 - i * 10, 151 - i * 10); }),
                  1000, sixteen));
  // Seventeen specs that merge into sixteen ranges.
  t.push_back(sat(spec_list(kMaxRanges + 1, [&](size_t i) { return i == kMaxRanges ? "0-1" : apart(i); }),
                  1000, sixteen));
  // Up to kMaxRangeSpecs specs are read, even when they merge into one.
  t.push_back(sat(spec_list(kMaxRangeSpecs, [](size_t i) { return span(i * 2, i * 2 + 1); }), 1000,
                  {{0, kMaxRangeSpecs * 2 - 1}}));
  t.push_back(sat(spec_list(kMaxRangeSpecs, [](size_t) { return std::string("0-0"); }), 1000, {{0, 0}}));
  t.push_back(ignored(spec_list(kMaxRangeSpecs + 1, [](size_t) { return std::string("0-0"); })));
  t.push_back(ignored(spec_list(kMaxRangeSpecs + 1, [](size_t i) { return span(i * 2, i * 2 + 1); })));
  // Unsatisfiable specs count too.
  t.push_back(ignored(spec_list(kMaxRangeSpecs + 1, [](size_t i) { return i ? span(5000, 6000) : "0-0"; })));
  t.push_back(sat(spec_list(kMaxRangeSpecs, [](size_t i) { return i ? span(5000, 6000) : "0-0"; }), 1000,
                  {{0, 0}}));
  // Empty elements do not.
  t.push_back(sat(spec_list(kMaxRangeSpecs, [](size_t) { return std::string("0-0,, "); }), 1000, {{0, 0}}));
  return t;
}

}  // namespace

TEST_CASE("byte range: each table row") {
  std::vector<Row> rows = table();
  CHECK(rows.size() > 100);
  for (const Row& row : rows) {
    CAPTURE(row.value);
    CAPTURE(row.length);
    RangeSet set = parse_exact(row.value, row.length);
    CHECK(kind_name(set.kind) == kind_name(row.kind));
    if (row.kind != Kind::satisfiable) {
      CHECK(set.count == 0);
      continue;
    }
    REQUIRE(set.count == row.ranges.size());
    for (size_t i = 0; i < set.count; ++i) {
      CAPTURE(i);
      CHECK(set.ranges[i].first == row.ranges[i].first);
      CHECK(set.ranges[i].last == row.ranges[i].last);
    }
  }
}

TEST_CASE("byte range: ByteRange::length counts both ends") {
  CHECK(ByteRange{0, 0}.length() == 1);
  CHECK(ByteRange{0, 499}.length() == 500);
  CHECK(ByteRange{9500, 9999}.length() == 500);
  CHECK(ByteRange{0, kMax - 1}.length() == kMax);
}

TEST_CASE("byte range: every prefix of a valid set is read without reading past it") {
  // A cut can leave a valid shorter set ("bytes=0-1" from "bytes=0-10"); the point is
  // that no prefix reads past its end (ASan) and none gives a range outside the length.
  const std::string full = "bytes=0-10, 20-, -5,\t, 100-200";
  for (size_t n = 0; n <= full.size(); ++n) {
    CAPTURE(n);
    RangeSet set = parse_exact(std::string_view(full).substr(0, n), 150);
    for (size_t i = 0; i < set.count; ++i) CHECK(set.ranges[i].last < 150);
  }
}

TEST_CASE("byte range: random sets agree with a byte-by-byte model") {
  std::mt19937 rng(20240229);
  auto pick = [&](uint32_t n) { return uint32_t(rng() % n); };
  for (int iter = 0; iter < 20000; ++iter) {
    uint64_t length = pick(24);
    size_t specs = 1 + pick(6);
    std::string value = "bytes=";
    std::vector<bool> covered(length, false);
    bool malformed = false;
    size_t satisfiable = 0;
    for (size_t s = 0; s < specs; ++s) {
      if (s) value += pick(2) ? ", " : ",";
      uint64_t a = pick(30), b = pick(30);
      uint64_t first = 0, last = 0;
      bool ok = true;
      switch (pick(3)) {
        case 0:  // a-b
          value += span(a, b);
          if (b < a) malformed = true;
          first = a;
          last = b;
          ok = a < length;
          break;
        case 1:  // a-
          value += std::to_string(a) + "-";
          first = a;
          last = length ? length - 1 : 0;
          ok = a < length;
          break;
        default:  // -b
          value += "-" + std::to_string(b);
          ok = b > 0 && length > 0;
          first = b >= length ? 0 : length - b;
          last = length ? length - 1 : 0;
          break;
      }
      if (!ok) continue;
      ++satisfiable;
      for (uint64_t i = first; i <= last && i < length; ++i) covered[i] = true;
    }
    CAPTURE(value);
    CAPTURE(length);
    RangeSet set = parse_exact(value, length);
    if (malformed) {
      CHECK(kind_name(set.kind) == "ignore");
      continue;
    }
    if (satisfiable == 0) {
      CHECK(kind_name(set.kind) == "unsatisfiable");
      continue;
    }
    // The model's maximal runs of covered bytes are the ranges.
    std::vector<ByteRange> runs;
    for (uint64_t i = 0; i < length; ++i) {
      if (!covered[i]) continue;
      if (!runs.empty() && runs.back().last + 1 == i) runs.back().last = i;
      else runs.push_back({i, i});
    }
    REQUIRE(kind_name(set.kind) == "satisfiable");
    REQUIRE(set.count == runs.size());
    for (size_t i = 0; i < runs.size(); ++i) {
      CHECK(set.ranges[i].first == runs[i].first);
      CHECK(set.ranges[i].last == runs[i].last);
    }
  }
}
