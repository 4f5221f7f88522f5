// Table tests of netloop-load's HTTP/1.x response parser (bench/load/http_response_parser.cpp):
// streams of one or more responses, valid and malformed, each fed whole, cut in two at
// every byte boundary, and byte by byte, through one parser object; every piece is
// placed so that it ends exactly where a PROT_NONE page begins, so a read past the bytes
// given is a crash, not a silent pass. Every cut must give the same responses.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "http_response_parser.hpp"

using netloop::load::HttpResponseParser;
using Status = HttpResponseParser::Status;
using namespace std::string_literals;

namespace {

// Readable pages followed by one PROT_NONE page; place() puts bytes right before it.
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

struct Response {
  int status;
  bool keep_alive;
  uint64_t body;
  bool operator==(const Response&) const = default;
};

struct Outcome {
  std::vector<Response> responses;
  std::string error;         // empty: none
  size_t consumed = 0;       // bytes the parser took in all
  bool finish_done = false;  // finish() completed a close-delimited response
  bool finish_error = false;
};

std::string show(const Outcome& o) {
  std::string s;
  for (auto& r : o.responses)
    s += std::to_string(r.status) + (r.keep_alive ? "/keep" : "/close") + "/" + std::to_string(r.body) + " ";
  if (!o.error.empty()) s += "error: " + o.error;
  if (o.finish_done) s += " finish: done";
  if (o.finish_error) s += " finish: error";
  return s;
}

// Feeds `raw` in the pieces that end at `cuts` (and at the end), then calls finish().
Outcome run(std::string_view raw, const std::vector<size_t>& cuts, GuardedBuffer& guard) {
  HttpResponseParser p;
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
        REQUIRE(r.consumed == n);  // a push parser keeps nothing back
        break;
      }
      o.responses.push_back({p.status_code(), p.keep_alive(), p.body_bytes()});
      data += r.consumed;
      n -= r.consumed;
    }
  }
  Status f = p.finish();
  if (f == Status::done) {
    o.finish_done = true;
    o.responses.push_back({p.status_code(), p.keep_alive(), p.body_bytes()});
  }
  if (f == Status::error) o.finish_error = true;
  return o;
}

// Whole, cut in two at every boundary, and byte by byte: the outcomes must agree.
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

struct Valid {
  const char* name;
  std::string raw;
  std::vector<Response> expect;
  bool by_close = false;  // the last response ends with the stream (finish())
};

const std::string kLongValue(300, 'v');  // a header line longer than the parser keeps
const std::string kInnerResponse = "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n";

std::vector<Valid> valid_streams() {
  return {
      {"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", {{200, true, 5}}},
      {"netloop-demo's own",
       "HTTP/1.1 200 OK\r\nServer: netloop\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
       "Content-Type: text/html\r\nContent-Length: 13\r\nETag: \"abc\"\r\n\r\nhello, world\n",
       {{200, true, 13}}},
      {"empty body", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", {{404, true, 0}}},
      {"no reason phrase", "HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok", {{200, true, 2}}},
      {"bare LF lines", "HTTP/1.1 200 OK\nContent-Length: 3\n\nabc", {{200, true, 3}}},
      {"header names in any case, OWS around values",
       "HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh: \t 4 \t\r\n\r\nbody", {{200, true, 4}}},
      {"same Content-Length twice", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
       {{200, true, 1}}},
      {"body bytes that look like a response",
       "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kInnerResponse.size()) + "\r\n\r\n" +
           kInnerResponse,
       {{200, true, kInnerResponse.size()}}},
      {"three pipelined",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
       "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nbb"
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nccc\r\n0\r\n\r\n",
       {{200, true, 1}, {404, true, 2}, {200, true, 3}}},
      {"chunked",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
       {{200, true, 12}}},
      {"chunked: hex sizes, extensions, BWS, trailers",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
       "A;name=value\r\n0123456789\r\n1f \t;ext\r\n" + std::string(31, 'z') + "\r\n"
       "0\r\nTrailer-One: 1\r\nTrailer-Two: 2\r\n\r\n",
       {{200, true, 41}}},
      {"chunked: data holding CRLF and chunk syntax",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n\r\n0\r\n\r\nX\r\n0\r\n\r\n",
       {{200, true, 8}}},
      {"chunked with bare LF", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nab\n0\n\n", {{200, true, 2}}},
      {"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
       {{200, false, 2}}},
      {"Connection: a token list with close",
       "HTTP/1.1 503 Busy\r\nConnection: upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n", {{503, false, 0}}},
      {"HTTP/1.0 without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", {{200, false, 2}}},
      {"HTTP/1.0 with keep-alive",
       "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", {{200, true, 2}}},
      {"204 and 304 have no body whatever they say",
       "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"
       "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
       {{204, true, 0}, {304, true, 0}}},
      {"interim 100 and 103 skipped",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!",
       {{200, true, 1}}},
      {"long uninteresting header lines", "HTTP/1.1 200 OK\r\nX-Long: " + kLongValue + "\r\nSet-Cookie: " +
                                              kLongValue + kLongValue + "\r\nContent-Length: 1\r\n\r\n1",
       {{200, true, 1}}},
      {"long reason phrase", "HTTP/1.1 200 " + kLongValue + "\r\nContent-Length: 1\r\n\r\n1", {{200, true, 1}}},
      {"body delimited by the close", "HTTP/1.1 200 OK\r\n\r\nall of this until the end", {{200, false, 25}}, true},
      {"unknown transfer coding: until the close",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", {{200, false, 3}}, true},
      {"chunked not last: until the close",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello", {{200, false, 8}}, true},
      {"a keep-alive one, then one until the close",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA" "HTTP/1.1 200 OK\r\n\r\nB",
       {{200, true, 1}, {200, false, 1}}, true},
  };
}

struct Malformed {
  const char* name;
  std::string raw;
  const char* error;  // a part of the message
  size_t before = 0;  // responses parsed before the error
};

std::vector<Malformed> malformed_streams() {
  return {
      {"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n", "malformed status line"},
      {"HTTP/2", "HTTP/2 200\r\n\r\n", "malformed status line"},
      {"HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", "unsupported HTTP version"},
      {"HTTP/3.0", "HTTP/3.0 200 OK\r\n\r\n", "unsupported HTTP version"},
      {"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", "malformed status line"},
      {"status 600", "HTTP/1.1 600 Nope\r\n\r\n", "malformed status line"},
      {"status 099", "HTTP/1.1 099 Nope\r\n\r\n", "malformed status line"},
      {"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"},
      {"no space after the version", "HTTP/1.1\t200 OK\r\n\r\n", "malformed status line"},
      {"empty line first", "\r\nHTTP/1.1 200 OK\r\n\r\n", "malformed status line"},
      {"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "101"},
      {"header without colon", "HTTP/1.1 200 OK\r\nContent-Length 5\r\n\r\n", "without a colon"},
      {"space before the colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", "malformed header name"},
      {"empty header name", "HTTP/1.1 200 OK\r\n: 5\r\n\r\n", "malformed header name"},
      {"obsolete folding", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  more\r\n\r\n", "folding"},
      {"Content-Length not a number", "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n", "malformed Content-Length"},
      {"negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed Content-Length"},
      {"Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", "malformed Content-Length"},
      {"empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "malformed Content-Length"},
      {"huge Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
       "malformed Content-Length"},
      {"two Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "two different"},
      {"Content-Length and Transfer-Encoding",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "both"},
      {"empty Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n", "empty Transfer-Encoding"},
      {"long Content-Length line",
       "HTTP/1.1 200 OK\r\nContent-Length: " + std::string(300, '0') + "1\r\n\r\n", "longer than 256"},
      {"long header name", "HTTP/1.1 200 OK\r\n" + std::string(300, 'X') + ": 1\r\n\r\n", "longer than 256"},
      {"chunk size not hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk-size"},
      {"chunk size empty", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", "malformed chunk-size"},
      {"chunk size with junk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\n", "malformed chunk-size"},
      {"chunk size too large",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", "more than 15 hex digits"},
      {"chunk longer than its size",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "longer than its chunk-size"},
      {"a stray CR after a chunk's data",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\r\n0\r\n\r\n", "longer than its chunk-size"},
      {"chunk-size line without end",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + std::string(400, 'e'), "longer than 256"},
      {"bad trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n", "without a colon"},
      {"a good one, then garbage",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxjunk\r\n", "malformed status line", 1},
  };
}

}  // namespace

TEST_CASE("valid responses parse alike whole, cut anywhere, and byte by byte") {
  for (const auto& v : valid_streams()) {
    INFO("stream: ", v.name);
    Outcome o = run_all_ways(v.raw);
    CHECK(o.error == "");
    CHECK(o.responses == v.expect);
    CHECK(o.finish_done == v.by_close);
    CHECK_FALSE(o.finish_error);
    CHECK(o.consumed == v.raw.size());
  }
}

TEST_CASE("malformed responses are errors however they are cut") {
  for (const auto& m : malformed_streams()) {
    INFO("stream: ", m.name);
    Outcome o = run_all_ways(m.raw);
    CHECK(o.error.find(m.error) != std::string::npos);
    CHECK(o.responses.size() == m.before);
  }
}

TEST_CASE("done consumes exactly one response and leaves the next") {
  const std::string one = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const std::string two = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
  const std::string both = one + two;
  HttpResponseParser p;
  auto r = p.parse(both.data(), both.size());
  CHECK(r.status == Status::done);
  CHECK(r.consumed == one.size());
  CHECK(p.status_code() == 200);
  r = p.parse(both.data() + one.size(), two.size());
  CHECK(r.status == Status::done);
  CHECK(r.consumed == two.size());
  CHECK(p.status_code() == 404);
  CHECK(p.body_bytes() == 1);
  CHECK_FALSE(p.in_progress());
  CHECK(p.finish() == Status::need_more);  // nothing in progress: a clean end
}

TEST_CASE("the stream ending inside a response is an error; between responses it is not") {
  const std::string full = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
  for (size_t cut = 1; cut < full.size(); ++cut) {
    HttpResponseParser p;
    auto r = p.parse(full.data(), cut);
    REQUIRE(r.status == Status::need_more);
    CHECK(p.in_progress());
    INFO("ended after ", cut, " bytes");
    CHECK(p.finish() == Status::error);
    CHECK(std::string(p.error()).find("in the middle of a response") != std::string::npos);
  }
  HttpResponseParser fresh;
  CHECK_FALSE(fresh.in_progress());
  CHECK(fresh.finish() == Status::need_more);
}

TEST_CASE("a head over 64 KiB is an error, one just under is not") {
  auto with_head = [](size_t filler) {
    return "HTTP/1.1 200 OK\r\nX-Filler: " + std::string(filler, 'f') + "\r\nContent-Length: 0\r\n\r\n";
  };
  const size_t fixed = with_head(0).size();
  const std::string fits = with_head(HttpResponseParser::kMaxHead - fixed);
  const std::string over = with_head(HttpResponseParser::kMaxHead - fixed + 1);
  REQUIRE(fits.size() == HttpResponseParser::kMaxHead);
  for (size_t piece : {size_t(1), size_t(1000), fits.size()}) {
    INFO("pieces of ", piece, " bytes");
    HttpResponseParser a, b;
    Status sa = Status::need_more, sb = Status::need_more;
    for (size_t i = 0; i < fits.size() && sa == Status::need_more; i += piece)
      sa = a.parse(fits.data() + i, std::min(piece, fits.size() - i)).status;
    for (size_t i = 0; i < over.size() && sb == Status::need_more; i += piece)
      sb = b.parse(over.data() + i, std::min(piece, over.size() - i)).status;
    CHECK(sa == Status::done);
    CHECK(sb == Status::error);
    CHECK(std::string(b.error()).find("64 KiB") != std::string::npos);
  }
}

TEST_CASE("trailers have a 64 KiB budget of their own") {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Big: " + std::string(60000, 'h') +
                           "\r\n\r\n1\r\nx\r\n0\r\n";
  const std::string trailers = "X-Trailer: " + std::string(60000, 't') + "\r\n\r\n";
  const std::string response = head + trailers;
  HttpResponseParser p;
  auto r = p.parse(response.data(), response.size());
  CHECK(r.status == Status::done);
  CHECK(r.consumed == response.size());
  const std::string too_many = head + "X-Trailer: " + std::string(70000, 't') + "\r\n\r\n";
  HttpResponseParser q;
  CHECK(q.parse(too_many.data(), too_many.size()).status == Status::error);
  CHECK(std::string(q.error()).find("trailers exceed 64 KiB") != std::string::npos);
}

TEST_CASE("a large body is skipped by count, and errors stick until reset") {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n";
  HttpResponseParser p;
  auto r = p.parse(head.data(), head.size());
  CHECK(r.status == Status::need_more);
  std::string chunk(1 << 16, 'b');
  uint64_t left = 1000000000;
  while (left > chunk.size()) {
    REQUIRE(p.parse(chunk.data(), chunk.size()).status == Status::need_more);
    left -= chunk.size();
  }
  r = p.parse(chunk.data(), chunk.size());
  CHECK(r.status == Status::done);
  CHECK(r.consumed == left);
  CHECK(p.body_bytes() == 1000000000u);

  HttpResponseParser q;
  q.parse("junk\r\n", 6);
  CHECK(q.parse(head.data(), head.size()).status == Status::error);
  CHECK(q.finish() == Status::error);
  q.reset();
  CHECK(q.parse(head.data(), head.size()).status == Status::need_more);
}
