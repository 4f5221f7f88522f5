// Table tests of netloop-load's Redis reply parser (bench/load/resp_reply_parser.cpp):
// streams of replies, valid and malformed, each fed whole, cut in two at every byte
// boundary, and byte by byte, with every piece ending where a PROT_NONE page begins (a
// read past the bytes given crashes). Every cut must give the same replies.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "resp_reply_parser.hpp"

using netloop::load::RespReplyParser;
using Status = RespReplyParser::Status;
using Type = RespReplyParser::Type;
using namespace std::string_literals;

namespace {

class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t capacity) {
    page_ = size_t(::sysconf(_SC_PAGESIZE));
    bytes_ = std::max(page_, (capacity + page_ - 1) / page_ * page_);
    void* p = ::mmap(nullptr, bytes_ + page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    base_ = static_cast<char*>(p);
    REQUIRE(::mprotect(base_ + bytes_, page_, PROT_NONE) == 0);
  }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  ~GuardedBuffer() { ::munmap(base_, bytes_ + page_); }

  const char* place(std::string_view b) {
    REQUIRE(b.size() <= bytes_);
    char* start = base_ + bytes_ - b.size();
    if (!b.empty()) std::memcpy(start, b.data(), b.size());
    return start;
  }

 private:
  size_t page_ = 0;
  size_t bytes_ = 0;
  char* base_ = nullptr;
};

struct Outcome {
  std::vector<std::string> replies;  // "bulk", "error:ERR text"...
  std::string error;
  size_t consumed = 0;
  bool in_progress = false;  // at the end of the bytes
};

std::string show(const Outcome& o) {
  std::string s;
  for (auto& r : o.replies) s += r + " | ";
  if (!o.error.empty()) s += "error: " + o.error;
  if (o.in_progress) s += " (in progress)";
  return s;
}

Outcome run(std::string_view raw, const std::vector<size_t>& cuts, GuardedBuffer& guard) {
  RespReplyParser p;
  Outcome o;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(raw.size());
  for (size_t end : ends) {
    const char* data = guard.place(raw.substr(from, end - from));
    size_t n = end - from;
    from = end;
    while (n > 0) {
      auto r = p.parse(data, n);
      REQUIRE(r.consumed <= n);
      o.consumed += r.consumed;
      if (r.status == Status::error) {
        o.error = p.error();
        return o;
      }
      if (r.status == Status::need_more) {
        REQUIRE(r.consumed == n);
        break;
      }
      std::string reply = RespReplyParser::name(p.type());
      if (p.type() == Type::error) reply += ":" + std::string(p.error_text());
      o.replies.push_back(reply);
      data += r.consumed;
      n -= r.consumed;
    }
  }
  o.in_progress = p.in_progress();
  return o;
}

Outcome run_all_ways(std::string_view raw) {
  GuardedBuffer guard(raw.size() + 1);
  Outcome whole = run(raw, {}, guard);
  for (size_t k = 1; k < raw.size(); ++k) {
    Outcome cut = run(raw, {k}, guard);
    INFO("cut at byte ", k, " of ", raw.size());
    CHECK(show(cut) == show(whole));
    if (whole.error.empty()) CHECK(cut.consumed == whole.consumed);
  }
  std::vector<size_t> bytes;
  for (size_t k = 1; k < raw.size(); ++k) bytes.push_back(k);
  Outcome one_by_one = run(raw, bytes, guard);
  INFO("byte by byte");
  CHECK(show(one_by_one) == show(whole));
  return whole;
}

const std::string kLongError = "ERR " + std::string(100, 'e');

struct Valid {
  const char* name;
  std::string raw;
  std::vector<std::string> expect;
};

std::vector<Valid> valid_streams() {
  return {
      {"simple string", "+PONG\r\n", {"simple"}},
      {"empty simple string", "+\r\n", {"simple"}},
      {"error", "-ERR unknown command 'FOO'\r\n", {"error:ERR unknown command 'FOO'"}},
      {"long error: its first 64 bytes kept", "-" + kLongError + "\r\n", {"error:" + kLongError.substr(0, 64)}},
      {"integers", ":0\r\n:-1\r\n:9223372036854775807\r\n:-9223372036854775808\r\n",
       {"integer", "integer", "integer", "integer"}},
      {"bulk string", "$3\r\nxxx\r\n", {"bulk"}},
      {"empty bulk string", "$0\r\n\r\n", {"bulk"}},
      {"null bulk string", "$-1\r\n", {"null"}},
      {"binary bulk string with CRLF and reply syntax inside", "$13\r\n\r\n+OK\r\n$-1\r\n\0\r\n"s, {"bulk"}},
      {"array of bulk strings", "*2\r\n$1\r\na\r\n$2\r\nbb\r\n", {"array"}},
      {"empty array", "*0\r\n", {"array"}},
      {"null array", "*-1\r\n", {"null"}},
      {"array of everything, nested",
       "*5\r\n+OK\r\n-ERR inner\r\n:5\r\n*2\r\n$-1\r\n*1\r\n*0\r\n$4\r\nlast\r\n", {"array"}},
      {"null elements inside an array", "*3\r\n$-1\r\n*-1\r\n$0\r\n\r\n", {"array"}},
      {"pipelined replies of every kind",
       "+OK\r\n$3\r\nbar\r\n$-1\r\n:1\r\n-WRONGTYPE Operation against a key\r\n*1\r\n+x\r\n",
       {"simple", "bulk", "null", "integer", "error:WRONGTYPE Operation against a key", "array"}},
      {"nested 32 deep", [] {
         std::string s;
         for (int i = 0; i < 32; ++i) s += "*1\r\n";
         return s + ":1\r\n";
       }(),
       {"array"}},
  };
}

struct Malformed {
  const char* name;
  std::string raw;
  const char* error;
  size_t before = 0;
};

std::vector<Malformed> malformed_streams() {
  return {
      {"an HTTP response", "HTTP/1.1 200 OK\r\n", "not a RESP2 reply"},
      {"RESP3 map", "%1\r\n+a\r\n+b\r\n", "not a RESP2 reply"},
      {"bare LF", "+OK\n", "LF without CR"},
      {"CR without LF", "+OK\rX\r\n", "CR not followed by LF"},
      {"integer with junk", ":12a\r\n", "malformed integer"},
      {"integer with a plus", ":+1\r\n", "malformed integer"},
      {"integer with leading zero", ":01\r\n", "malformed integer"},
      {"minus zero", ":-0\r\n", "malformed integer"},
      {"empty integer", ":\r\n", "malformed integer"},
      {"integer overflow", ":9223372036854775808\r\n", "malformed integer"},
      {"integer too long", ":" + std::string(30, '1') + "\r\n", "longer than 24"},
      {"bulk length junk", "$x\r\n", "malformed bulk string length"},
      {"bulk length -2", "$-2\r\n", "negative bulk string length"},
      {"bulk longer than said", "$2\r\nabc\r\n", "longer than its length"},
      {"bulk not ended by CRLF", "$2\r\nab\rX", "not followed by CRLF"},
      {"bulk over 512 MiB", "$536870913\r\n", "longer than 512 MiB"},
      {"array length junk", "*1x\r\n", "malformed array length"},
      {"array length -3", "*-3\r\n", "negative array length"},
      {"an element that is not one", "*1\r\nhello\r\n", "not a RESP2 reply"},
      {"nested 33 deep", [] {
         std::string s;
         for (int i = 0; i < 33; ++i) s += "*1\r\n";
         return s + ":1\r\n";
       }(),
       "nested more than 32"},
      {"a good one, then garbage", "+OK\r\n?\r\n", "not a RESP2 reply", 1},
  };
}

}  // namespace

TEST_CASE("valid replies parse alike whole, cut anywhere, and byte by byte") {
  for (const auto& v : valid_streams()) {
    INFO("stream: ", v.name);
    Outcome o = run_all_ways(v.raw);
    CHECK(o.error == "");
    CHECK(o.replies == v.expect);
    CHECK(o.consumed == v.raw.size());
    CHECK_FALSE(o.in_progress);
  }
}

TEST_CASE("malformed replies are errors however they are cut") {
  for (const auto& m : malformed_streams()) {
    INFO("stream: ", m.name);
    Outcome o = run_all_ways(m.raw);
    CHECK(o.error.find(m.error) != std::string::npos);
    CHECK(o.replies.size() == m.before);
  }
}

TEST_CASE("done consumes exactly one reply; every proper prefix is in progress") {
  const std::string reply = "*3\r\n$3\r\nfoo\r\n:42\r\n*1\r\n+OK\r\n";
  const std::string both = reply + "+NEXT\r\n";
  RespReplyParser p;
  auto r = p.parse(both.data(), both.size());
  CHECK(r.status == Status::done);
  CHECK(r.consumed == reply.size());
  CHECK(p.type() == Type::array);
  CHECK_FALSE(p.in_progress());
  r = p.parse(both.data() + reply.size(), both.size() - reply.size());
  CHECK(r.status == Status::done);
  CHECK(p.type() == Type::simple);

  // Only a top-level error has a text: errors inside an array (EXEC's) are elements.
  const std::string errors = "-ERR top\r\n*2\r\n-ERR inner one\r\n-ERR inner two\r\n";
  RespReplyParser e;
  r = e.parse(errors.data(), errors.size());
  REQUIRE(r.status == Status::done);
  CHECK(e.error_text() == "ERR top");
  r = e.parse(errors.data() + r.consumed, errors.size() - r.consumed);
  REQUIRE(r.status == Status::done);
  CHECK(e.type() == Type::array);
  CHECK(e.error_text() == "");

  for (size_t cut = 1; cut < reply.size(); ++cut) {
    RespReplyParser q;
    INFO("prefix of ", cut, " bytes");
    CHECK(q.parse(reply.data(), cut).status == Status::need_more);
    CHECK(q.in_progress());
  }
}

TEST_CASE("a large bulk string is skipped by count; errors stick until reset") {
  const std::string head = "$100000000\r\n";
  RespReplyParser p;
  REQUIRE(p.parse(head.data(), head.size()).status == Status::need_more);
  std::string chunk(1 << 16, 'v');
  size_t left = 100000000;
  while (left > chunk.size()) {
    REQUIRE(p.parse(chunk.data(), chunk.size()).status == Status::need_more);
    left -= chunk.size();
  }
  REQUIRE(p.parse(chunk.data(), left).status == Status::need_more);
  auto r = p.parse("\r\n", 2);
  CHECK(r.status == Status::done);
  CHECK(p.type() == Type::bulk);

  RespReplyParser q;
  CHECK(q.parse("!\r\n", 3).status == Status::error);
  CHECK(q.parse("+OK\r\n", 5).status == Status::error);
  q.reset();
  CHECK(q.parse("+OK\r\n", 5).status == Status::done);
}
