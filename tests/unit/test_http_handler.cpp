// Unit tests for the HTTP connection handler (protocols/http/http_handler.cpp) through
// netloop::testing::MemoryConnection: framing, pipelining, keep-alive rules, bodies,
// backpressure and both timeouts on a fake clock. No sockets, no loop.
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "http_site.hpp"

using namespace http_test;

namespace {

constexpr std::string_view kGet = "GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n";

}  // namespace

TEST_CASE("one request, one response; the connection stays open (HTTP/1.1 keep-alive)") {
  Site site;
  auto c = connection(responder_for(&site));
  c->feed(kGet);
  auto rs = split_responses(c->take_output());
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].status == 200);
  CHECK(rs[0].body == "hello, world\n");
  CHECK(rs[0].head.find("Connection:") == std::string::npos);
  CHECK(rs[0].head.find("Server: netloop\r\n") != std::string::npos);
  CHECK(rs[0].head.find("Date: ") != std::string::npos);
  CHECK_FALSE(c->closed());
  CHECK(c->unconsumed_input() == 0);
}

TEST_CASE("a request split at every byte boundary gives the same response") {
  Site site;
  auto r = responder_for(&site);
  auto whole = connection(r);
  whole->feed(kGet);
  std::string expected = whole->take_output();
  for (size_t cut = 1; cut < kGet.size(); ++cut) {
    CAPTURE(cut);
    auto c = connection(r);
    c->feed(kGet.substr(0, cut));
    CHECK(c->output().empty());
    c->feed(kGet.substr(cut));
    auto got = split_responses(c->take_output());
    REQUIRE(got.size() == 1);
    CHECK(got[0].body == "hello, world\n");
  }
  auto bytewise = connection(r);
  bytewise->feed_in_pieces(kGet, 1);
  CHECK(split_responses(bytewise->take_output()).size() == 1);
}

TEST_CASE("pipelined requests are answered in order, in one batch") {
  Site site;
  auto c = connection(responder_for(&site));
  std::string batch;
  for (int i = 0; i < 50; ++i)
    batch += (i % 2 ? "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n" : "GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
  c->feed(batch);
  auto rs = split_responses(c->take_output());
  REQUIRE(rs.size() == 50);
  for (int i = 0; i < 50; ++i) CHECK(rs[size_t(i)].body == (i % 2 ? "AAAA" : "BB"));
  CHECK_FALSE(c->closed());
}

TEST_CASE("Connection: close and HTTP/1.0 rules") {
  Site site;
  auto r = responder_for(&site);
  SUBCASE("1.1 with Connection: close: answered, then closed (local)") {
    auto c = connection(r);
    c->feed("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);  // nothing after the request that asked to close
    CHECK(rs[0].head.find("Connection: close\r\n") != std::string::npos);
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::local);
  }
  SUBCASE("1.0 without keep-alive: closed after the response") {
    auto c = connection(r);
    c->feed("GET / HTTP/1.0\r\n\r\n");
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == 200);
    CHECK(rs[0].head.find("Connection: close\r\n") != std::string::npos);
    CHECK(c->closed());
  }
  SUBCASE("1.0 with Connection: keep-alive: kept, and the response says so") {
    auto c = connection(r);
    c->feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].head.find("Connection: keep-alive\r\n") != std::string::npos);
    CHECK_FALSE(c->closed());
  }
}

TEST_CASE("parser errors are answered and close the connection") {
  Site site;
  auto r = responder_for(&site);
  struct Row {
    std::string_view raw;
    int status;
  };
  const Row rows[] = {
      {"GET / HTTP/1.1\nHost: t\n\n", 400},
      {"GET / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505},
      {"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400},
  };
  for (const auto& row : rows) {
    CAPTURE(row.raw);
    auto c = connection(r);
    c->feed(std::string(row.raw) + "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == row.status);
    CHECK(rs[0].head.find("Connection: close\r\n") != std::string::npos);
    CHECK(c->closed());
  }
}

TEST_CASE("methods: 405 with Allow for known ones, 501 for unknown ones; the connection goes on") {
  Site site;
  auto c = connection(responder_for(&site));
  c->feed("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
          "BREW / HTTP/1.1\r\nHost: t\r\n\r\n"
          "HEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string out = c->take_output();
  // HEAD has a Content-Length but no body: split the first two, then check the last head.
  auto first = split_responses(out.substr(0, out.rfind("HTTP/1.1 200")));
  REQUIRE(first.size() == 2);
  CHECK(first[0].status == 405);
  CHECK(first[0].head.find("Allow: GET, HEAD\r\n") != std::string::npos);
  CHECK(first[1].status == 501);
  auto last = split_responses(out.substr(out.rfind("HTTP/1.1 200")), /*head_only=*/true);
  REQUIRE(last.size() == 1);
  CHECK(last[0].head.find("Content-Length: 4\r\n") != std::string::npos);
  CHECK_FALSE(c->closed());
}

TEST_CASE("a GET body is read past, arriving in pieces; one past the limit is a 413") {
  Site site;
  HttpOptions o;
  o.max_discarded_body = 100;
  auto r = responder_for(&site, o);
  SUBCASE("within the limit") {
    auto c = connection(r);
    c->feed("GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234");
    c->feed("56789GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 2);
    CHECK(rs[0].body == "AAAA");
    CHECK(rs[1].body == "BB");
  }
  SUBCASE("past it") {
    auto c = connection(r);
    c->feed("GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n");
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == 413);
    CHECK(c->closed());
  }
  SUBCASE("Expect: 100-continue with a body: answered, then closed (the body may never come)") {
    auto c = connection(r);
    c->feed("GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == 200);
    CHECK(rs[0].head.find("Connection: close\r\n") != std::string::npos);
    CHECK(c->closed());
  }
}

TEST_CASE("a client that pipelines without reading: requests wait in the input, output stays bounded") {
  Site site;
  MemoryOptions mo;
  mo.high_water = 64 * 1024;
  mo.low_water = 16 * 1024;
  auto c = connection(responder_for(&site), mo);
  c->set_peer_reading(false);
  std::string batch;
  for (int i = 0; i < 20; ++i) batch += "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
  c->feed(batch);
  // One 300 KiB response is past the high-water mark: the handler stops there.
  CHECK(c->pending() < 2 * 300 * 1024);
  CHECK(c->unconsumed_input() > 0);
  size_t answered = 0;
  std::string all;
  for (int round = 0; round < 100 && answered < 20; ++round) {
    c->peer_reads();
    all += c->take_output();
    answered = 0;
    for (size_t at = all.find("HTTP/1.1 200"); at != std::string::npos; at = all.find("HTTP/1.1 200", at + 1))
      ++answered;
    CHECK(c->pending() < 2 * 300 * 1024);
  }
  CHECK(answered == 20);
  auto rs = split_responses(all);
  CHECK(rs.size() == 20);
  for (const auto& resp : rs) CHECK(resp.body.size() == 300 * 1024);
}

TEST_CASE("timeouts: header timeout gives 408 and close; idle keep-alive closes silently") {
  Site site;
  HttpOptions o;
  o.header_timeout = seconds(2);
  o.keepalive_timeout = seconds(5);
  auto r = responder_for(&site, o);
  SUBCASE("a request that never finishes (slowloris)") {
    auto c = connection(r);
    c->feed("GET / HTTP/1.1\r\n");
    for (int i = 0; i < 3; ++i) {
      c->advance(milliseconds(500));
      c->feed("X-a: b\r\n");  // trickling does not extend the deadline
    }
    CHECK_FALSE(c->closed());
    c->advance(milliseconds(600));
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == 408);
    CHECK(c->closed());
  }
  SUBCASE("nothing ever sent: closed after the header timeout, no response") {
    auto c = connection(r);
    c->advance(milliseconds(1900));
    CHECK_FALSE(c->closed());
    c->advance(milliseconds(200));
    CHECK(c->closed());
    CHECK(c->output().empty());
  }
  SUBCASE("idle after a response: closed after the keep-alive timeout, no response") {
    auto c = connection(r);
    c->feed(kGet);
    CHECK(split_responses(c->take_output()).size() == 1);
    c->advance(milliseconds(4900));
    CHECK_FALSE(c->closed());
    c->advance(milliseconds(200));
    CHECK(c->closed());
    CHECK(c->output().empty());
  }
  SUBCASE("requests keep an active connection open past both timeouts") {
    auto c = connection(r);
    for (int i = 0; i < 10; ++i) {
      c->feed(kGet);
      c->advance(seconds(4));
    }
    CHECK_FALSE(c->closed());
    CHECK(split_responses(c->take_output()).size() == 10);
  }
}

TEST_CASE("the peer's end of stream after pipelined requests: all answered, then closed") {
  Site site;
  auto c = connection(responder_for(&site));
  c->feed("GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
  c->peer_shutdown();
  auto rs = split_responses(c->take_output());
  CHECK(rs.size() == 2);
  REQUIRE(c->closed());
  CHECK(c->close_info()->reason == CloseReason::peer);
}

TEST_CASE("the built-in page without a root") {
  auto c = connection(responder_for(nullptr));
  c->feed("GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
  auto rs = split_responses(c->take_output());
  REQUIRE(rs.size() == 2);
  CHECK(rs[0].status == 200);
  CHECK(rs[0].head.find("Content-Type: text/html") != std::string::npos);
  CHECK(rs[0].body.find("netloop") != std::string::npos);
  CHECK(rs[1].status == 404);
}

TEST_CASE("a drain gives an idle keep-alive connection a grace for one more request") {
  Site site;
  auto r = responder_for(&site);
  SUBCASE("a request in the grace is answered with Connection: close, then closed") {
    auto c = connection(r);
    c->feed(kGet);
    CHECK(split_responses(c->take_output()).size() == 1);
    c->server_drain();
    CHECK_FALSE(c->closed());  // closing now would cut a request already on its way
    c->advance(milliseconds(500));
    c->feed(kGet);
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == 200);
    CHECK(rs[0].head.find("Connection: close\r\n") != std::string::npos);
    CHECK(c->closed());
  }
  SUBCASE("no request: closed when the grace ends, not at the keep-alive timeout") {
    auto c = connection(r);
    c->feed(kGet);
    c->take_output();
    c->server_drain();
    c->advance(milliseconds(900));
    CHECK_FALSE(c->closed());
    c->advance(milliseconds(200));
    CHECK(c->closed());
    CHECK(c->output().empty());
  }
}
