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
      {"https://127.0.0.1:8443/", "127.0.0.1", 8443, "/", "127.0.0.1:8443"},
      {"HTTPS://example.com/a", "example.com", 443, "/a", "example.com"},
      {"https://[::1]:443/", "::1", 443, "/", "[::1]"},
      {"https://host:80/", "host", 80, "/", "host:80"},
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
    CHECK(u->tls == (std::string(c.text).substr(0, 6) == "https:" || std::string(c.text).substr(0, 6) == "HTTPS:"));
  }
}

TEST_CASE("bad URLs say what is wrong") {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"ftp://example.com/", "unsupported scheme 'ftp'"},
      {"httpx://example.com/", "unsupported scheme 'httpx'"},
      {"https://", "no host"},
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

TEST_CASE("TLS options") {
  auto e = parse({"tcp-echo", "127.0.0.1:7443", "--connections", "2", "--size", "64", "--duration", "1",
                  "--tls", "--tls-ca", "ca.pem", "--tls-sni=bench.test"});
  REQUIRE_MESSAGE(e.options, e.error);
  CHECK(e.options->tls);
  CHECK(e.options->tls_ca == "ca.pem");
  CHECK(e.options->tls_sni == "bench.test");
  CHECK(e.options->tls_verify);
  CHECK(e.options->tls_resume);

  auto plain = parse({"tcp-echo", "127.0.0.1:7007", "--connections", "1", "--size", "1", "--duration", "1"});
  REQUIRE(plain.options);
  CHECK_FALSE(plain.options->tls);
  CHECK(plain.options->tls_verify);
  CHECK(plain.options->tls_ca.empty());
  CHECK(plain.options->tls_sni.empty());

  // An https:// URL is --tls; --tls with an http:// URL is TLS on that URL's port.
  auto hs = parse({"http", "https://localhost:8443/f", "--connections", "1", "--duration", "1",
                   "--tls-no-verify"});
  REQUIRE_MESSAGE(hs.options, hs.error);
  CHECK(hs.options->tls);
  CHECK_FALSE(hs.options->tls_verify);
  CHECK(hs.options->port == 8443);
  CHECK(hs.options->host_header == "localhost:8443");
  auto ht = parse({"http", "http://127.0.0.1:8443/", "--connections", "1", "--duration", "1", "--tls"});
  REQUIRE_MESSAGE(ht.options, ht.error);
  CHECK(ht.options->tls);
  CHECK(ht.options->port == 8443);
  auto cl = parse({"http", "https://127.0.0.1:8443/", "--connections", "1", "--duration", "1", "--close"});
  REQUIRE_MESSAGE(cl.options, cl.error);
  CHECK(cl.options->close);
  auto nr = parse({"http", "https://127.0.0.1:8443/", "--connections", "1", "--duration", "1", "--close",
                   "--tls-no-resume"});
  REQUIRE_MESSAGE(nr.options, nr.error);
  CHECK_FALSE(nr.options->tls_resume);
  CHECK_FALSE(ht.options->close);
  auto h443 = parse({"http", "https://example.com/", "--connections", "1", "--duration", "1"});
  REQUIRE(h443.options);
  CHECK(h443.options->port == 443);
  CHECK(h443.options->tls_verify);

  struct Bad {
    std::vector<std::string> args;
    const char* error;
  };
  const Bad bad[] = {
      {{"udp-echo", "127.0.0.1:7", "--clients", "1", "--size", "64", "--duration", "1", "--tls"},
       "--tls is for tcp-echo and http only"},
      {{"resp", "x:1", "--connections", "1", "--duration", "1", "--tls"}, "--tls is for tcp-echo and http only"},
      {{"tcp-echo", "x:1", "--connections", "1", "--size", "1", "--duration", "1", "--tls-ca", "ca.pem"},
       "--tls-ca needs --tls"},
      {{"tcp-echo", "x:1", "--connections", "1", "--size", "1", "--duration", "1", "--tls-sni", "a"},
       "--tls-sni needs --tls"},
      {{"http", "http://x/", "--connections", "1", "--duration", "1", "--tls-no-verify"},
       "--tls-no-verify needs --tls"},
      {{"tcp-echo", "x:1", "--connections", "1", "--size", "1", "--duration", "1", "--tls", "--tls-ca"},
       "--tls-ca needs a file"},
      {{"tcp-echo", "x:1", "--connections", "1", "--size", "1", "--duration", "1", "--tls", "--tls-ca="},
       "--tls-ca: empty file name"},
      {{"tcp-echo", "x:1", "--connections", "1", "--size", "1", "--duration", "1", "--tls", "--tls-sni"},
       "--tls-sni needs a host name"},
      {{"tcp-echo", "x:1", "--connections", "1", "--size", "1", "--duration", "1", "--tls", "--tls-sni", "a b"},
       "a host name is letters"},
      {{"tcp-echo", "x:1", "--connections", "1", "--size", "1", "--duration", "1", "--tls",
        "--tls-sni", std::string(254, 'a')},
       "1 to 253 characters"},
      {{"tcp-echo", "x:1", "--connections", "1", "--size", "1", "--duration", "1", "--tls=yes"},
       "--tls takes no value"},
      {{"tcp-echo", "x:1", "--connections", "1", "--size", "1", "--duration", "1", "--tls-no-verify=1"},
       "--tls-no-verify takes no value"},
      {{"http", "https://x/", "--connections", "1", "--duration", "1", "--tls-ca", "ca.pem", "--tls-no-verify"},
       "contradict"},
      {{"tcp-echo", "x:1", "--connections", "1", "--size", "1", "--duration", "1", "--close"}, "--close is for http only"},
      {{"http", "http://x/", "--connections", "1", "--duration", "1", "--tls-no-resume"}, "--tls-no-resume needs --tls"},
      {{"http", "http://x/", "--connections", "1", "--duration", "1", "--close", "--pipeline", "2"}, "takes no --pipeline"},
      {{"http", "http://x/", "--connections", "1", "--duration", "1", "--close=1"}, "--close takes no value"},
  };
  for (const auto& b : bad) {
    auto out = parse(b.args);
    INFO(b.args[0], " ", b.error);
    CHECK_FALSE(out.options);
    CHECK_MESSAGE(out.error.find(b.error) != std::string::npos, out.error);
  }
}
