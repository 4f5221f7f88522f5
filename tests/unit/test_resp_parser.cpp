// Table tests of the RESP2 request parser (demos/kv/resp_parser.cpp): arrays of bulk
// strings and inline commands, every prefix of a valid request (need more, never an
// error), binary-safe values, malformed and oversized lengths, the limits.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "kv/resp_parser.hpp"
#include "resp_command.hpp"

using namespace netloop::demo::kv;
using namespace std::string_literals;
using namespace std::string_view_literals;

using kv_test::resp_command;

namespace {

std::vector<std::string> copy_args(const RespParser& p) {
  std::vector<std::string> out;
  for (auto a : p.args()) out.emplace_back(a);
  return out;
}

std::string status_name(RespStatus s) {
  switch (s) {
    case RespStatus::need_more: return "need_more";
    case RespStatus::complete: return "complete";
    case RespStatus::error: return "error";
  }
  return "?";
}

struct Valid {
  std::string raw;
  std::vector<std::string> args;
};

const std::string kBinary = "a\r\nb\0c\xff\r\n\r\n"s;  // CR, LF, NUL, 0xff inside a value

std::vector<Valid> valid_requests() {
  return {
      {"*1\r\n$4\r\nPING\r\n", {"PING"}},
      {"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", {"ECHO", ""}},
      {"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n", {"SET", "key", "value"}},
      {resp_command({"SET", "k\r\n", kBinary}), {"SET", "k\r\n", kBinary}},
      {resp_command({"SET", "$3\r\n", "*1\r\n"}), {"SET", "$3\r\n", "*1\r\n"}},  // framing bytes as data
      {resp_command({"GET", std::string(1000, 'x')}), {"GET", std::string(1000, 'x')}},
      {"*0\r\n", {}},   // Redis ignores empty arrays
      {"*-1\r\n", {}},  // ...and negative counts
      {"*-5\r\n", {}},
      // Inline commands, as typed into telnet.
      {"PING\r\n", {"PING"}},
      {"PING\n", {"PING"}},
      {"SET k v\r\n", {"SET", "k", "v"}},
      {"  GET \t  k   \r\n", {"GET", "k"}},
      {"\r\n", {}},  // a blank line: nothing to run
      {"   \n", {}},
      {"SET k \"a b\"\r\n", {"SET", "k", "a b"}},
      {"SET k \"\"\r\n", {"SET", "k", ""}},
      {"ECHO \"\\x41\\x62\\n\\r\\t\\\"q\\\\\"\r\n", {"ECHO", "Ab\n\r\t\"q\\"}},
      {"ECHO \"\\xZZ\"\r\n", {"ECHO", "xZZ"}},  // not a hex escape: backslash dropped
      {"ECHO \"\\b\\a\\q\\x4\"\r\n", {"ECHO", "\b\aqx4"}},
      {"ECHO \"it's\" 'say \"hi\"' '\\n'\r\n", {"ECHO", "it's", "say \"hi\"", "\\n"}},
      {"ECHO 'it\\'s' 'a\\nb'\r\n", {"ECHO", "it's", "a\\nb"}},
      {"ECHO a\"b c\"\r\n", {"ECHO", "ab c"}},  // quotes may start inside a word
      {"ECHO \"x\" 'y' z\r\n", {"ECHO", "x", "y", "z"}},
      {"ECHO caf\xc3\xa9\r\n", {"ECHO", "caf\xc3\xa9"}},
  };
}

}  // namespace

TEST_CASE("valid requests, whole: complete, the right arguments, exactly their bytes consumed") {
  for (const auto& v : valid_requests()) {
    CAPTURE(v.raw);
    RespParser p;
    // With the next request behind it: consumed must stop at the end of this one.
    std::string in = v.raw + "*1\r\n$4\r\nNEXT\r\n";
    RespResult r = p.parse(in);
    REQUIRE(status_name(r.status) == "complete");
    CHECK(r.consumed == v.raw.size());
    CHECK(copy_args(p) == v.args);
    CHECK_FALSE(p.in_progress());
    // And the next one parses on its own.
    r = p.parse(std::string_view(in).substr(v.raw.size()));
    REQUIRE(r.status == RespStatus::complete);
    CHECK(copy_args(p) == std::vector<std::string>{"NEXT"});
  }
}

TEST_CASE("every proper prefix of a valid request needs more, resumed or from scratch") {
  for (const auto& v : valid_requests()) {
    CAPTURE(v.raw);
    RespParser resumed;
    for (size_t n = 1; n < v.raw.size(); ++n) {
      CAPTURE(n);
      std::string_view prefix = std::string_view(v.raw).substr(0, n);
      RespParser fresh;
      CHECK(status_name(fresh.parse(prefix).status) == "need_more");
      CHECK(status_name(resumed.parse(prefix).status) == "need_more");
      CHECK(resumed.in_progress());
    }
    RespResult r = resumed.parse(v.raw);
    REQUIRE(status_name(r.status) == "complete");
    CHECK(r.consumed == v.raw.size());
    CHECK(copy_args(resumed) == v.args);
  }
  RespParser p;
  CHECK(p.parse("").status == RespStatus::need_more);
}

TEST_CASE("resuming across random splits gives the same arguments as a whole parse") {
  std::mt19937 rng(42);
  std::string value(300 * 1024, '\0');
  for (auto& c : value) c = char(rng());
  std::string raw = resp_command({"SET", "big", value, "EX", "10"});
  for (int round = 0; round < 5; ++round) {
    RespParser p;
    size_t have = 0;
    RespResult r;
    while (true) {
      have = std::min(raw.size(), have + 1 + rng() % 5000);
      r = p.parse(std::string_view(raw).substr(0, have));
      if (r.status != RespStatus::need_more) break;
      REQUIRE(have < raw.size());
    }
    REQUIRE(r.status == RespStatus::complete);
    CHECK(have == raw.size());
    CHECK(r.consumed == raw.size());
    REQUIRE(p.args().size() == 5);
    CHECK(p.args()[2] == value);
  }
}

TEST_CASE("arguments are views into the request (zero-copy), quoted inline words excepted") {
  RespParser p;
  std::string in = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
  REQUIRE(p.parse(in).status == RespStatus::complete);
  CHECK(p.args()[0].data() == in.data() + 8);
  CHECK(p.args()[1].data() == in.data() + 17);
  std::string inl = "GET key\r\n";
  REQUIRE(p.parse(inl).status == RespStatus::complete);
  CHECK(p.args()[1].data() == inl.data() + 4);
}

TEST_CASE("malformed requests: a protocol error with Redis's message") {
  struct Row {
    std::string raw;
    std::string_view error;
  };
  const Row rows[] = {
      {"*x\r\n", "invalid multibulk length"},
      {"*\r\n", "invalid multibulk length"},
      {"*1x\r\n", "invalid multibulk length"},
      {"*01\r\n", "invalid multibulk length"},  // leading zero
      {"*+1\r\n", "invalid multibulk length"},
      {"* 1\r\n", "invalid multibulk length"},
      {"*-0\r\n", "invalid multibulk length"},
      {"*1\rx", "invalid multibulk length"},    // CR without LF
      {"*1\n$4\r\nPING\r\n", "invalid multibulk length"},  // bare LF
      {"*99999999999999999999\r\n", "invalid multibulk length"},  // past int64
      {"*1048577\r\n", "invalid multibulk length"},               // past max_args
      {"*" + std::string(30, '1'), "too big mbulk count string"},
      {"*1\r\n+PING\r\n", "expected '$', got '+'"},
      {"*1\r\nPING\r\n", "expected '$', got 'P'"},
      {"*1\r\n\x01", "expected '$', got byte 0x01"},
      {"*2\r\n$4\r\nPING\r\n:1\r\n", "expected '$', got ':'"},
      {"*1\r\n$-1\r\n", "invalid bulk length"},
      {"*1\r\n$x\r\n", "invalid bulk length"},
      {"*1\r\n$\r\n", "invalid bulk length"},
      {"*1\r\n$04\r\nPING\r\n", "invalid bulk length"},
      {"*1\r\n$ 4\r\nPING\r\n", "invalid bulk length"},
      {"*1\r\n$4\rPING", "invalid bulk length"},
      {"*1\r\n$9999999999999999999999\r\n", "invalid bulk length"},  // past int64
      {"*1\r\n$8388609\r\n", "invalid bulk length"},                 // past max_bulk
      {"*1\r\n$" + std::string(30, '9'), "too big bulk count string"},
      {"*1\r\n$4\r\nPINGxx", "expected CRLF after a bulk string"},
      {"*1\r\n$4\r\nPING\n\r", "expected CRLF after a bulk string"},
      {"*1\r\n$3\r\nPING\r\n", "expected CRLF after a bulk string"},  // length too short
      {"SET k \"abc\r\n", "unbalanced quotes in request"},
      {"SET k \"a\"b\r\n", "unbalanced quotes in request"},
      {"SET k 'abc\r\n", "unbalanced quotes in request"},
      {"SET k 'a'b\r\n", "unbalanced quotes in request"},
      {"ECHO a\"b c\"d\r\n", "unbalanced quotes in request"},
      {"SET k \"a\\\"\r\n", "unbalanced quotes in request"},
      {std::string(64 * 1024 + 1, 'a'), "too big inline request"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.raw);
    RespParser p;
    RespResult r = p.parse(row.raw);
    REQUIRE(status_name(r.status) == "error");
    CHECK(r.error == row.error);
    CHECK(p.args().empty());
    CHECK_FALSE(p.in_progress());
  }
}

TEST_CASE("errors are found incrementally too, as soon as the bytes show them") {
  RespParser p;
  std::string raw = "*2\r\n$3\r\nGET\r\n$-7\r\n";
  RespResult r;
  size_t n = 1;
  for (; n <= raw.size(); ++n) {
    r = p.parse(std::string_view(raw).substr(0, n));
    if (r.status != RespStatus::need_more) break;
  }
  REQUIRE(r.status == RespStatus::error);
  CHECK(r.error == "invalid bulk length");
  CHECK(n == raw.size());  // the LF ending "$-7\r\n"
}

TEST_CASE("limits from KvOptions") {
  KvOptions o;
  o.max_bulk = 10;
  o.max_args = 3;
  o.max_inline = 16;
  o.max_command = 50;
  struct Row {
    std::string raw;
    std::string_view error;  // empty: complete
  };
  const Row rows[] = {
      {resp_command({"a", "b", "0123456789"}), ""},
      {resp_command({"a", "b", "01234567890"}), "invalid bulk length"},
      {resp_command({"a", "b", "c", "d"}), "invalid multibulk length"},
      {"*3\r\n", ""},  // need more
      {"a             b\r\n", ""},  // 15 + CR: the LF is at offset 16
      {"a              b\r\n", "too big inline request"},
      {std::string(17, 'a'), "too big inline request"},
      {"a b c\r\n", ""},
      {"a b c d\r\n", "too many arguments in inline request"},
      {"a 01234567890\r\n", "invalid bulk length"},
      {"a \"01234567890\"\r\n", "invalid bulk length"},
      {"*3\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n", "request too large"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.raw);
    RespParser p(o);
    RespResult r = p.parse(row.raw);
    if (row.error.empty()) {
      CHECK(r.status != RespStatus::error);
    } else {
      REQUIRE(status_name(r.status) == "error");
      CHECK(r.error == row.error);
    }
  }
}

TEST_CASE("parse_integer follows Redis's string2ll") {
  struct Row {
    std::string_view s;
    bool ok;
    int64_t v;
  };
  const Row rows[] = {
      {"0", true, 0},        {"1", true, 1},         {"-1", true, -1},
      {"10", true, 10},      {"9223372036854775807", true, INT64_MAX},
      {"-9223372036854775807", true, -INT64_MAX},
      {"9223372036854775808", false, 0},
      {"", false, 0},        {"-", false, 0},        {"-0", false, 0},
      {"01", false, 0},      {"+1", false, 0},       {" 1", false, 0},
      {"1 ", false, 0},      {"1.5", false, 0},      {"0x10", false, 0},
  };
  for (const auto& row : rows) {
    CAPTURE(row.s);
    int64_t v = 12345;
    CHECK(parse_integer(row.s, v) == row.ok);
    if (row.ok) CHECK(v == row.v);
  }
}
