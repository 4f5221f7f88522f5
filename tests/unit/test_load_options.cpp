// Unit tests of netloop-load's targets and command line (bench/load/target.cpp and
// options.cpp): HOST:PORT and http:// URLs, good and bad, and the http and resp
// scenarios' flags.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "options.hpp"
#include "target.hpp"

using namespace netloop::load;

namespace {

std::string url_error(const std::string& text) {
  std::string why;
  auto u = parse_http_url(text, &why);
  if (u) return "parsed: " + u->host + " " + std::to_string(u->port) + " " + u->path;
  return why;
}

ParseOutcome parse(std::vector<std::string> args) { return parse_load_options(args); }

}  // namespace

TEST_CASE("http URLs") {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
    const char* path;
    const char* host_header;
  };
  const Case cases[] = {
      {"http://127.0.0.1:8080/", "127.0.0.1", 8080, "/", "127.0.0.1:8080"},
      {"http://127.0.0.1:8080", "127.0.0.1", 8080, "/", "127.0.0.1:8080"},
      {"HTTP://localhost/index.html", "localhost", 80, "/index.html", "localhost"},
      {"http://example.com:80/a/b?x=1&y=%20", "example.com", 80, "/a/b?x=1&y=%20", "example.com"},
      {"http://host?q", "host", 80, "/?q", "host"},
      {"http://[::1]:8080/x", "::1", 8080, "/x", "[::1]:8080"},
      {"http://[::1]/", "::1", 80, "/", "[::1]"},
      {"http://h_1.example-2.org:65535/#frag", "h_1.example-2.org", 65535, "/", "h_1.example-2.org:65535"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    std::string why;
    auto u = parse_http_url(c.text, &why);
    REQUIRE_MESSAGE(u, why);
    CHECK(u->host == c.host);
    CHECK(u->port == c.port);
    CHECK(u->path == c.path);
    CHECK(u->host_header == c.host_header);
  }
}

TEST_CASE("bad URLs say what is wrong") {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"https://127.0.0.1:8443/", "https is not supported"},
      {"HTTPS://example.com/", "https is not supported"},
      {"ftp://example.com/", "unsupported scheme 'ftp'"},
      {"127.0.0.1:8080/", "not an http:// URL"},
      {"http://", "no host"},
      {"http:///path", "no host"},
      {"http://:8080/", "no host"},
      {"http://host:/", "port '' is not a number"},
      {"http://host:0/", "port 0"},
      {"http://host:65536/", "out of range"},
      {"http://host:80x/", "not a number"},
      {"http://user@host/", "user information"},
      {"http://::1:8080/", "IPv6 address needs brackets"},
      {"http://[::1/", "without its ']'"},
      {"http://[nope]:80/", "not an IPv6 address"},
      {"http://[::1]x/", "unexpected 'x'"},
      {"http://ho st/", "cannot be part of a host name"},
      {"http://host/a b", "percent-encode"},
      {"http://host/\x7f", "percent-encode"},
      {"http://host/\xc3\xa9", "percent-encode"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK(url_error(c.text).find(c.error) != std::string::npos);
  }
  CHECK(url_error("http://" + std::string(254, 'a') + "/").find("longer than 253") != std::string::npos);
}

TEST_CASE("HOST:PORT") {
  std::string why;
  auto a = parse_host_port("localhost:6379", &why);
  REQUIRE(a);
  CHECK(a->host == "localhost");
  CHECK(a->port == 6379);
  auto b = parse_host_port("[::1]:7", &why);
  REQUIRE(b);
  CHECK(b->host == "::1");
  CHECK(bracketed(b->host) == "[::1]");
  CHECK_FALSE(parse_host_port("localhost", &why));
  CHECK(why.find("missing :PORT") != std::string::npos);
  CHECK_FALSE(parse_host_port("::1:80", &why));
  CHECK(why.find("brackets") != std::string::npos);
  CHECK_FALSE(parse_host_port("127.0.0.1:0", &why));
}

TEST_CASE("http and resp command lines") {
  auto h = parse({"http", "http://localhost:8080/x", "--connections", "4", "--duration", "1",
                  "--pipeline", "8", "--json"});
  REQUIRE_MESSAGE(h.options, h.error);
  CHECK(h.options->scenario == "http");
  CHECK(h.options->host == "localhost");
  CHECK(h.options->port == 8080);
  CHECK(h.options->path == "/x");
  CHECK(h.options->pipeline == 8);
  CHECK(h.options->target_text == "http://localhost:8080/x");

  auto r = parse({"resp", "127.0.0.1:6379", "--connections=2", "--duration=0.5", "--command", "GET",
                  "--size", "100", "--key", "k:1"});
  REQUIRE_MESSAGE(r.options, r.error);
  CHECK(r.options->command == RespCommand::get);
  CHECK(r.options->size == 100);
  CHECK(r.options->key == "k:1");
  auto d = parse({"resp", "127.0.0.1:6379", "--connections", "2", "--duration", "1"});
  REQUIRE(d.options);
  CHECK(d.options->command == RespCommand::ping);
  CHECK(d.options->key == kDefaultRespKey);

  auto t = parse({"tcp-echo", "localhost:7007", "--connections", "1", "--size", "1", "--duration", "1"});
  REQUIRE_MESSAGE(t.options, t.error);
  CHECK(t.options->host == "localhost");

  struct Bad {
    std::vector<std::string> args;
    const char* error;
  };
  const Bad bad[] = {
      {{"http", "https://x/", "--connections", "1", "--duration", "1"}, "https is not supported"},
      {{"http"}, "needs the URL"},
      {{"http", "http://x/", "--duration", "1"}, "missing --connections"},
      {{"http", "http://x/", "--connections", "1"}, "missing --duration"},
      {{"http", "http://x/", "--connections", "1", "--duration", "1", "--size", "1"}, "--size is not for http"},
      {{"http", "http://x/", "--connections", "1", "--duration", "1", "--command", "get"}, "for resp only"},
      {{"http", "http://x/", "--clients", "1", "--duration", "1"}, "--clients is for udp-echo"},
      {{"resp", "x", "--connections", "1", "--duration", "1"}, "missing :PORT"},
      {{"resp", "x:1", "--connections", "1", "--duration", "1", "--command", "del"}, "expected ping, set or get"},
      {{"resp", "x:1", "--connections", "1", "--duration", "1", "--size", "5"}, "ping sends no value"},
      {{"resp", "x:1", "--connections", "1", "--duration", "1", "--key", "a b"}, "without spaces"},
      {{"resp", "x:1", "--connections", "1", "--duration", "1", "--pipeline", "2000"}, "expected 1 to 1024"},
      {{"resp", "x:1", "--connections", "1", "--duration", "1", "--max-loss", "1%"}, "udp-echo only"},
      {{"tcp-echo", "x:1", "--connections", "1", "--duration", "1", "--key", "k"}, "for resp only"},
      {{"smtp", "x:1"}, "unknown scenario 'smtp'"},
  };
  for (const auto& b : bad) {
    auto out = parse(b.args);
    INFO(b.args[0], " ", b.error);
    CHECK_FALSE(out.options);
    CHECK(out.error.find(b.error) != std::string::npos);
  }
}
