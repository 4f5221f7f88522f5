// Unit tests for static serving as browsers and caches use it (protocols/http: the
// responder, file_response.cpp, root_directory.cpp, the metrics endpoint) through
// MemoryConnection: redirects that stay on the host, dotfiles, Connection fields, ETag and
// conditional requests, ranges, precompressed siblings, Cache-Control, the cache's
// freshness and budget, the portable resolver, and the metrics endpoint's limits.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <functional>
#include <sys/syscall.h>

#include "http/http_date.hpp"
#include "http/metrics_endpoint.hpp"
#include "http_site.hpp"
#include "seccomp_refuse.hpp"

using namespace http_test;

namespace {

std::string req(std::string_view target, std::string_view extra = {}, std::string_view method = "GET") {
  std::string r(method);
  r += " ";
  r += target;
  r += " HTTP/1.1\r\nHost: t\r\n";
  r += extra;
  r += "\r\n";
  return r;
}

// One request on a fresh connection; its one response.
Response ask(const std::shared_ptr<HttpResponder>& r, std::string_view request, bool head = false) {
  auto c = connection(r);
  c->feed(request);
  auto rs = split_responses(c->take_output(), head);
  REQUIRE(rs.size() == 1);
  return rs[0];
}

void set_mtime(const std::filesystem::path& p, time_t secs) {
  timespec times[2] = {{secs, 0}, {secs, 0}};
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), times, 0) == 0);
}

std::string http_date(time_t t) {
  char d[kHttpDateSize];
  format_http_date(t, d);
  return std::string(d, sizeof d);
}

constexpr time_t kMtime = 1'700'000'000;  // Tue, 14 Nov 2023 22:13:20 GMT

// A site whose files have a known mtime.
struct StaticSite : Site {
  StaticSite() {
    write("sub/index.html", "sub index\n");
    write("my dir/index.html", "spaced\n");
    write("digits.txt", "0123456789");
    write(".env", "SECRET=1\n");
    write(".git/config", "[core]\n");
    write("sub/.htpasswd", "user:hash\n");
    write(".well-known/security.txt", "Contact: x\n");
    write(".well-known/.hidden", "no\n");
    std::string big(200 * 1024, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = char('a' + i % 26);
    write("big.txt", big);
    for (const char* f : {"digits.txt", "big.txt", "a.txt"}) set_mtime(dir / f, kMtime);
  }
};

}  // namespace

TEST_CASE("redirects are built from the normalized path and never leave the host") {
  StaticSite site;
  auto r = responder_for(&site);
  struct Row {
    std::string_view target;
    std::string_view location;
  };
  const Row rows[] = {
      {"/sub", "/sub/"},
      {"/sub?x=1", "/sub/?x=1"},
      {"//evil.example/../sub", "/sub/"},
      {"//evil.example/..//sub", "/sub/"},
      {"/./sub", "/sub/"},
      {"http://t//evil.example/../sub", "/sub/"},
      {"/my%20dir", "/my%20dir/"},
      {"/%2e/sub", "/sub/"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.target);
    Response resp = ask(r, req(row.target));
    CHECK(resp.status == 301);
    std::string loc = resp.header("Location");
    CHECK(loc == row.location);
    CHECK(loc.rfind("//", 0) != 0);
    CHECK(loc.rfind("/\\", 0) != 0);
  }
  // What the redirect names is there.
  CHECK(ask(r, req("/my%20dir/")).body == "spaced\n");
}

TEST_CASE("dotfiles: 404 but for /.well-known/, unless turned on") {
  StaticSite site;
  auto hidden = responder_for(&site);
  HttpOptions on;
  on.dotfiles = true;
  auto shown = responder_for(&site, on);
  struct Row {
    std::string_view target;
    int status_default;
    int status_on;
  };
  const Row rows[] = {
      {"/.env", 404, 200},
      {"/.git/config", 404, 200},
      {"/.git/", 404, 403},  // a directory without an index
      {"/sub/.htpasswd", 404, 200},
      {"/%2eenv", 404, 200},
      {"/sub/../.env", 404, 200},
      {"/.well-known/security.txt", 200, 200},
      {"/.well-known/.hidden", 404, 200},
      {"/digits.txt", 200, 200},
  };
  for (const auto& row : rows) {
    CAPTURE(row.target);
    Response a = ask(hidden, req(row.target));
    CHECK(a.status == row.status_default);
    if (a.status == 404) CHECK(a.body.find("SECRET") == std::string::npos);
    CHECK(ask(shown, req(row.target)).status == row.status_on);
  }
}

TEST_CASE("a close in any Connection field closes") {
  StaticSite site;
  auto r = responder_for(&site);
  const char* cases[] = {
      "Connection: close\r\nConnection: keep-alive\r\n",
      "Connection: keep-alive\r\nConnection: close\r\n",
      "Connection: keep-alive, close\r\n",
      "Connection: upgrade\r\nConnection: Close\r\n",
  };
  for (const char* extra : cases) {
    CAPTURE(extra);
    auto c = connection(r);
    c->feed(req("/digits.txt", extra) + req("/digits.txt"));
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].header("Connection") == "close");
    CHECK(c->closed());
  }
  // HTTP/1.0: keep-alive on one line, close on another: close.
  auto c = connection(r);
  c->feed("GET /digits.txt HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n");
  CHECK(split_responses(c->take_output()).size() == 1);
  CHECK(c->closed());
}

TEST_CASE("files carry a strong ETag, Last-Modified and Accept-Ranges; Cache-Control when set") {
  StaticSite site;
  HttpOptions o;
  o.cache_control = "max-age=60";
  auto r = responder_for(&site, o);
  for (std::string_view path : {"/digits.txt", "/big.txt"}) {
    CAPTURE(path);
    Response a = ask(r, req(path));
    CHECK(a.status == 200);
    std::string etag = a.header("ETag");
    REQUIRE(etag.size() >= 3);
    CHECK(etag.front() == '"');
    CHECK(etag.back() == '"');
    CHECK(etag.rfind("W/", 0) != 0);
    CHECK(a.header("Last-Modified") == http_date(kMtime));
    CHECK(a.header("Accept-Ranges") == "bytes");
    CHECK(a.header("Cache-Control") == "max-age=60");
    CHECK_FALSE(a.has("Vary"));  // no siblings
    CHECK(ask(r, req(path)).header("ETag") == etag);  // stable
    // HEAD: the same fields, no body.
    Response h = ask(r, req(path, {}, "HEAD"), /*head=*/true);
    CHECK(h.header("ETag") == etag);
    CHECK(h.header("Content-Length") == a.header("Content-Length"));
  }
  CHECK(ask(r, req("/digits.txt")).header("ETag") != ask(r, req("/big.txt")).header("ETag"));
  CHECK_FALSE(ask(r, req("/nope")).has("Cache-Control"));
}

TEST_CASE("conditional requests in the order of RFC 9110 §13.2.2") {
  StaticSite site;
  HttpOptions o;
  o.cache_control = "no-cache";
  auto r = responder_for(&site, o);
  for (std::string_view path : {"/digits.txt", "/big.txt"}) {
    CAPTURE(path);
    const std::string etag = ask(r, req(path)).header("ETag");
    const std::string weak = "W/" + etag;
    const std::string before = http_date(kMtime - 10), at = http_date(kMtime),
                      after = http_date(kMtime + 10);
    struct Row {
      std::string extra;
      int status;
    };
    const Row rows[] = {
        {"If-None-Match: " + etag + "\r\n", 304},
        {"If-None-Match: " + weak + "\r\n", 304},  // weak comparison
        {"If-None-Match: \"x\", " + etag + "\r\n", 304},
        {"If-None-Match: \"x\"\r\nIf-None-Match: " + etag + "\r\n", 304},  // one list
        {"If-None-Match: *\r\n", 304},
        {"If-None-Match: \"x\"\r\n", 200},
        {"If-None-Match: \"x\"\r\nIf-Modified-Since: " + after + "\r\n", 200},  // INM wins
        {"If-None-Match: " + etag + "\r\nIf-Modified-Since: " + before + "\r\n", 304},
        {"If-Modified-Since: " + at + "\r\n", 304},
        {"If-Modified-Since: " + after + "\r\n", 304},
        {"If-Modified-Since: " + before + "\r\n", 200},
        {"If-Modified-Since: yesterday\r\n", 200},  // unparsable: ignored
        {"If-Match: " + etag + "\r\n", 200},
        {"If-Match: *\r\n", 200},
        {"If-Match: \"x\"\r\n", 412},
        {"If-Match: " + weak + "\r\n", 412},  // strong comparison
        {"If-Match: \"x\"\r\nIf-None-Match: " + etag + "\r\n", 412},  // If-Match first
        {"If-Unmodified-Since: " + before + "\r\n", 412},
        {"If-Unmodified-Since: " + at + "\r\n", 200},
        {"If-Unmodified-Since: garbage\r\n", 200},
        {"If-Match: " + etag + "\r\nIf-Unmodified-Since: " + before + "\r\n", 200},  // IUS skipped
    };
    for (const auto& row : rows) {
      CAPTURE(row.extra);
      for (std::string_view method : {"GET", "HEAD"}) {
        CAPTURE(method);
        Response resp = ask(r, req(path, row.extra, method), method == "HEAD");
        CHECK(resp.status == row.status);
        if (resp.status == 304) {
          CHECK(resp.body.empty());
          CHECK_FALSE(resp.has("Content-Length"));
          CHECK(resp.header("ETag") == etag);
          CHECK(resp.header("Cache-Control") == "no-cache");
          CHECK(resp.has("Date"));
        }
      }
    }
  }
  // HTTP/1.0 and close get their 304 too (not the prepared one).
  auto c = connection(r);
  c->feed("GET /digits.txt HTTP/1.0\r\nIf-Modified-Since: " + http_date(kMtime) + "\r\n\r\n");
  auto rs = split_responses(c->take_output());
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].status == 304);
  CHECK(rs[0].head.rfind("HTTP/1.1 304 Not Modified\r\n", 0) == 0);
  CHECK(r->stats().not_modified > 0);
}

TEST_CASE("ranges: 206, 416, ignored sets, If-Range; from memory and from disk") {
  StaticSite site;
  auto r = responder_for(&site);
  const std::string digits = "0123456789";
  std::string big(200 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char('a' + i % 26);
  for (bool large : {false, true}) {
    CAPTURE(large);
    const std::string path = large ? "/big.txt" : "/digits.txt";
    const std::string& content = large ? big : digits;
    const uint64_t len = content.size();
    const std::string etag = ask(r, req(path)).header("ETag");
    struct Row {
      std::string range;
      int status;
      uint64_t first, last;
    };
    const Row rows[] = {
        {"bytes=0-4", 206, 0, 4},
        {"bytes=2-", 206, 2, len - 1},
        {"bytes=-3", 206, len - 3, len - 1},
        {"bytes=5-100000000", 206, 5, len - 1},  // clipped
        {"Bytes=1-1", 206, 1, 1},
        {"bytes=0-0,-1", 0, 0, 0},  // two ranges: multipart, checked below
        {"bytes=" + std::to_string(len) + "-", 416, 0, 0},
        {"bytes=-0", 416, 0, 0},
        {"bytes=4-2", 200, 0, 0},  // malformed: ignored
        {"items=0-4", 200, 0, 0},  // another unit
        {"bytes=a-b", 200, 0, 0},
    };
    for (const auto& row : rows) {
      if (row.status == 0) continue;
      CAPTURE(row.range);
      Response resp = ask(r, req(path, "Range: " + row.range + "\r\n"));
      CHECK(resp.status == row.status);
      if (row.status == 206) {
        CHECK(resp.header("Content-Range") == "bytes " + std::to_string(row.first) + "-" +
                                                  std::to_string(row.last) + "/" + std::to_string(len));
        CHECK(resp.body == content.substr(row.first, row.last - row.first + 1));
        CHECK(resp.header("ETag") == etag);
      } else if (row.status == 416) {
        CHECK(resp.header("Content-Range") == "bytes */" + std::to_string(len));
      } else {
        CHECK(resp.body == content);
        CHECK_FALSE(resp.has("Content-Range"));
      }
    }
    // HEAD ignores Range; a repeated Range is ignored.
    CHECK(ask(r, req(path, "Range: bytes=0-4\r\n", "HEAD"), true).status == 200);
    CHECK(ask(r, req(path, "Range: bytes=0-4\r\nRange: bytes=1-2\r\n")).status == 200);
    // If-Range: the current ETag or Last-Modified honours the Range; anything else sends all.
    CHECK(ask(r, req(path, "Range: bytes=0-4\r\nIf-Range: " + etag + "\r\n")).status == 206);
    CHECK(ask(r, req(path, "Range: bytes=0-4\r\nIf-Range: W/" + etag + "\r\n")).status == 200);
    CHECK(ask(r, req(path, "Range: bytes=0-4\r\nIf-Range: \"other\"\r\n")).status == 200);
    CHECK(ask(r, req(path, "Range: bytes=0-4\r\nIf-Range: " + http_date(kMtime) + "\r\n")).status == 206);
    CHECK(ask(r, req(path, "Range: bytes=0-4\r\nIf-Range: " + http_date(kMtime + 1) + "\r\n")).status == 200);
    // A 304 beats the Range.
    CHECK(ask(r, req(path, "Range: bytes=0-4\r\nIf-None-Match: " + etag + "\r\n")).status == 304);
  }
  CHECK(r->stats().partial > 0);
}

namespace {

struct Part {
  std::string content_range;
  std::string bytes;
};

// The parts of a multipart/byteranges body with boundary `b`.
std::vector<Part> parse_multipart(const std::string& body, const std::string& b) {
  std::vector<Part> parts;
  const std::string delim = "--" + b;
  size_t at = body.find(delim);
  REQUIRE(at == 0);
  for (;;) {
    at += delim.size();
    if (body.compare(at, 2, "--") == 0) {
      CHECK(body.substr(at) == "--\r\n");
      break;
    }
    REQUIRE(body.compare(at, 2, "\r\n") == 0);
    size_t head_end = body.find("\r\n\r\n", at);
    REQUIRE(head_end != std::string::npos);
    std::string head = body.substr(at, head_end + 4 - at);
    size_t next = body.find("\r\n" + delim, head_end + 4);
    REQUIRE(next != std::string::npos);
    Part p;
    size_t cr = head.find("Content-Range: ");
    REQUIRE(cr != std::string::npos);
    p.content_range = head.substr(cr + 15, head.find("\r\n", cr) - cr - 15);
    CHECK(head.find("Content-Type: text/plain") != std::string::npos);
    p.bytes = body.substr(head_end + 4, next - head_end - 4);
    parts.push_back(p);
    at = next + 2;
  }
  return parts;
}

}  // namespace

TEST_CASE("several ranges: multipart/byteranges, or the whole file when that is not smaller") {
  StaticSite site;
  auto r = responder_for(&site);
  std::string big(200 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char('a' + i % 26);
  // From disk (sendfile, one descriptor per part).
  Response resp = ask(r, req("/big.txt", "Range: bytes=100-199, 5000-5099,-10\r\n"));
  REQUIRE(resp.status == 206);
  std::string type = resp.header("Content-Type");
  REQUIRE(type.rfind("multipart/byteranges; boundary=", 0) == 0);
  auto parts = parse_multipart(resp.body, type.substr(31));
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].content_range == "bytes 100-199/204800");
  CHECK(parts[0].bytes == big.substr(100, 100));
  CHECK(parts[1].content_range == "bytes 5000-5099/204800");
  CHECK(parts[1].bytes == big.substr(5000, 100));
  CHECK(parts[2].content_range == "bytes 204790-204799/204800");
  CHECK(parts[2].bytes == big.substr(204790));
  // Overlapping and adjacent ranges are merged into one part.
  resp = ask(r, req("/big.txt", "Range: bytes=0-99,50-149,150-199\r\n"));
  CHECK(resp.status == 206);
  CHECK(resp.header("Content-Range") == "bytes 0-199/204800");
  // Many small ranges of a small file would be larger than the file: 200 whole.
  resp = ask(r, req("/digits.txt", "Range: bytes=0-0,2-2,4-4,6-6\r\n"));
  CHECK(resp.status == 200);
  CHECK(resp.body == "0123456789");
  // More ranges than kMaxRanges after merging: the whole file.
  std::string many = "Range: bytes=";
  for (int i = 0; i < 40; ++i) many += std::to_string(i * 1000) + "-" + std::to_string(i * 1000 + 1) + ",";
  many.back() = '\r';
  resp = ask(r, req("/big.txt", many + "\n"));
  CHECK(resp.status == 200);
  CHECK(resp.body.size() == big.size());
  // In memory.
  site.write("letters.txt", big.substr(0, 4000));
  resp = ask(r, req("/letters.txt", "Range: bytes=0-9,3000-3009\r\n"));
  REQUIRE(resp.status == 206);
  parts = parse_multipart(resp.body, resp.header("Content-Type").substr(31));
  REQUIRE(parts.size() == 2);
  CHECK(parts[1].bytes == big.substr(3000, 10));
}

TEST_CASE("precompressed siblings: chosen by Accept-Encoding, each its own ETag, Vary on all") {
  Site site;
  site.write("app.js", "console.log('plain');\n");
  site.write("app.js.gz", "GZ-BYTES");
  site.write("app.js.br", "BR-BYTES!");
  site.write("style.css", "body{}\n");
  site.write("style.css.gz", "OLD-GZ");
  set_mtime(site.dir / "style.css.gz", kMtime - 100);  // older than style.css: stale
  site.write("plain.txt", "no siblings\n");
  auto r = responder_for(&site);
  struct Row {
    std::string_view accept;  // "-": no field
    std::string_view body;
    std::string_view encoding;
  };
  const Row rows[] = {
      {"-", "console.log('plain');\n", ""},
      {"gzip", "GZ-BYTES", "gzip"},
      {"gzip, deflate, br", "BR-BYTES!", "br"},
      {"br;q=0.5, gzip", "GZ-BYTES", "gzip"},
      {"gzip;q=0, br;q=0", "console.log('plain');\n", ""},
      {"x-gzip", "GZ-BYTES", "gzip"},
      {"*", "BR-BYTES!", "br"},
      {"identity", "console.log('plain');\n", ""},
      {"", "console.log('plain');\n", ""},
  };
  std::vector<std::string> etags;
  for (const auto& row : rows) {
    CAPTURE(row.accept);
    std::string extra = row.accept == "-" ? std::string() : "Accept-Encoding: " + std::string(row.accept) + "\r\n";
    Response resp = ask(r, req("/app.js", extra));
    CHECK(resp.status == 200);
    CHECK(resp.body == row.body);
    CHECK(resp.header("Content-Encoding") == row.encoding);
    CHECK(resp.has("Content-Encoding") == !row.encoding.empty());
    CHECK(resp.header("Content-Type").rfind("text/javascript", 0) == 0);
    CHECK(resp.header("Vary") == "Accept-Encoding");
    etags.push_back(resp.header("ETag"));
  }
  CHECK(etags[0] != etags[1]);
  CHECK(etags[1] != etags[2]);
  CHECK(etags[0] == etags[7]);
  // 304 and Range on the chosen representation.
  Response nm = ask(r, req("/app.js", "Accept-Encoding: gzip\r\nIf-None-Match: " + etags[1] + "\r\n"));
  CHECK(nm.status == 304);
  CHECK(nm.header("Vary") == "Accept-Encoding");
  CHECK(ask(r, req("/app.js", "Accept-Encoding: br\r\nIf-None-Match: " + etags[1] + "\r\n")).status == 200);
  Response failed = ask(r, req("/app.js", "Accept-Encoding: gzip\r\nIf-Match: \"nope\"\r\n"));
  CHECK(failed.status == 412);
  CHECK(failed.header("Vary") == "Accept-Encoding");
  CHECK_FALSE(ask(r, req("/plain.txt", "If-Match: \"nope\"\r\n")).has("Vary"));
  Response part = ask(r, req("/app.js", "Accept-Encoding: gzip\r\nRange: bytes=0-1\r\n"));
  CHECK(part.status == 206);
  CHECK(part.body == "GZ");
  CHECK(part.header("Content-Range") == "bytes 0-1/8");
  // Two Accept-Encoding lines make one list.
  CHECK(ask(r, req("/app.js", "Accept-Encoding: gzip;q=0.1\r\nAccept-Encoding: br\r\n")).body == "BR-BYTES!");
  // The sibling by its own name: itself, no Content-Encoding.
  Response direct = ask(r, req("/app.js.gz", "Accept-Encoding: gzip\r\n"));
  CHECK(direct.body == "GZ-BYTES");
  CHECK_FALSE(direct.has("Content-Encoding"));
  // A sibling older than the original is not served; no Vary without siblings.
  Response css = ask(r, req("/style.css", "Accept-Encoding: gzip\r\n"));
  CHECK(css.body == "body{}\n");
  CHECK_FALSE(css.has("Vary"));
  CHECK_FALSE(ask(r, req("/plain.txt", "Accept-Encoding: gzip\r\n")).has("Vary"));
  // Turned off: the original, no Vary.
  HttpOptions off;
  off.precompressed = false;
  Response plain = ask(responder_for(&site, off), req("/app.js", "Accept-Encoding: gzip, br\r\n"));
  CHECK(plain.body == "console.log('plain');\n");
  CHECK_FALSE(plain.has("Vary"));
  CHECK_FALSE(plain.has("Content-Encoding"));
}

TEST_CASE("a fresh sibling is never sent from the descriptor opened for its original") {
  // The original is due for its check (so it is opened) while its gzip sibling's entry is
  // still fresh: the sibling's bytes must come from the sibling.
  Site site;
  std::string plain(100 * 1024, 'p'), gz(80 * 1024, 'g');
  site.write("big.js", plain);
  site.write("big.js.gz", gz);
  HttpOptions o;
  o.cache_revalidate = seconds(1);
  auto r = responder_for(&site, o);
  auto c = connection(r);
  auto get_one = [&c](std::string_view extra) {
    c->feed(req("/big.js", extra));
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);
    return rs[0];
  };
  CHECK(get_one({}).body == plain);                           // t = 0: the original's entry
  c->advance(milliseconds(500));
  CHECK(get_one("Accept-Encoding: gzip\r\n").body == gz);    // t = 0.5: the sibling's
  c->advance(milliseconds(700));                              // t = 1.2: only the original is due
  Response resp = get_one("Accept-Encoding: gzip\r\n");
  CHECK(resp.header("Content-Encoding") == "gzip");
  CHECK(resp.body == gz);
  Response part = get_one("Accept-Encoding: gzip\r\nRange: bytes=70000-90000\r\n");
  CHECK(part.body == gz.substr(70000, 20001));
}

TEST_CASE("small ranges of a large file are read in, so no descriptor waits for each") {
  StaticSite site;
  auto r = responder_for(&site);
  ask(r, req("/big.txt"));
  uint64_t sent_before = r->stats().files_sent;
  Response one = ask(r, req("/big.txt", "Range: bytes=1000-1009\r\n"));
  CHECK(one.status == 206);
  CHECK(one.body == "mnopqrstuv");
  Response multi = ask(r, req("/big.txt", "Range: bytes=0-0,5000-5000,100000-100001\r\n"));
  CHECK(multi.status == 206);
  CHECK(multi.body.find("\r\n\r\na\r\n--") != std::string::npos);
  CHECK(r->stats().files_sent == sent_before);  // nothing went out with sendfile
  // A large range still does.
  CHECK(ask(r, req("/big.txt", "Range: bytes=0-99999\r\n")).body.size() == 100000);
  CHECK(r->stats().files_sent == sent_before + 1);
}

TEST_CASE("a symlink is no way around the dotfile rule") {
  StaticSite site;
  std::filesystem::create_symlink(".git", site.dir / "gitlink");
  std::filesystem::create_symlink(".env", site.dir / "env.txt");
  std::filesystem::create_symlink("../.env", site.dir / "sub/up.txt");
  std::filesystem::create_symlink("digits.txt", site.dir / "plain-link.txt");
  auto r = responder_for(&site);
  for (std::string_view path : {"/gitlink/config", "/env.txt", "/sub/up.txt"}) {
    CAPTURE(path);
    Response resp = ask(r, req(path));
    CHECK(resp.status == 404);
    CHECK(resp.body.find("SECRET") == std::string::npos);
  }
  CHECK(ask(r, req("/plain-link.txt")).body == "0123456789");
  HttpOptions on;
  on.dotfiles = true;
  CHECK(ask(responder_for(&site, on), req("/env.txt")).body == "SECRET=1\n");
}

TEST_CASE("Last-Modified is never later than Date; a date just written is no If-Range validator") {
  Site site;
  site.write("future.txt", "from the future\n");
  set_mtime(site.dir / "future.txt", std::time(nullptr) + 86400);
  site.write("now.txt", "just now\n");
  set_mtime(site.dir / "now.txt", std::time(nullptr) + 2);  // not a second before it was read
  auto r = responder_for(&site);
  Response f = ask(r, req("/future.txt"));
  auto lm = parse_http_date(f.header("Last-Modified"));
  auto date = parse_http_date(f.header("Date"));
  REQUIRE(lm.has_value());
  REQUIRE(date.has_value());
  CHECK(*lm <= *date);
  // now.txt's Last-Modified is when it was read: another version may share that second, so
  // If-Range with that date does not honour the Range.
  Response n = ask(r, req("/now.txt"));
  CHECK(ask(r, req("/now.txt", "Range: bytes=0-3\r\nIf-Range: " + n.header("Last-Modified") + "\r\n")).status == 200);
  CHECK(ask(r, req("/now.txt", "Range: bytes=0-3\r\nIf-Range: " + n.header("ETag") + "\r\n")).status == 206);
}

TEST_CASE("a file changed on disk is served fresh after the revalidation interval, same size and mtime included") {
  Site site;
  site.write("f.txt", "version-1\n");
  set_mtime(site.dir / "f.txt", kMtime);
  HttpOptions o;
  o.cache_revalidate = seconds(1);
  auto r = responder_for(&site, o);
  auto c = connection(r);
  c->feed(req("/f.txt"));
  auto first = split_responses(c->take_output());
  REQUIRE(first.size() == 1);
  CHECK(first[0].body == "version-1\n");
  // Same size, and the mtime put back: only ctime (and the content) tell.
  site.write("f.txt", "version-2\n");
  set_mtime(site.dir / "f.txt", kMtime);
  c->feed(req("/f.txt"));
  CHECK(split_responses(c->take_output())[0].body == "version-1\n");  // within the interval
  c->advance(milliseconds(1100));
  c->feed(req("/f.txt"));
  auto fresh = split_responses(c->take_output());
  CHECK(fresh[0].body == "version-2\n");
  CHECK(fresh[0].header("ETag") != first[0].header("ETag"));
  // The old ETag no longer gets a 304.
  c->feed(req("/f.txt", "If-None-Match: " + first[0].header("ETag") + "\r\n"));
  CHECK(split_responses(c->take_output())[0].status == 200);
}

TEST_CASE("a large file changed between its check and its sending is served anew, never mixed") {
  Site site;
  site.write("big.bin", std::string(100 * 1024, 'x'));
  HttpOptions o;
  o.cache_revalidate = seconds(3600);
  auto r = responder_for(&site, o);
  auto c = connection(r);
  c->feed(req("/big.bin"));
  CHECK(split_responses(c->take_output())[0].body == std::string(100 * 1024, 'x'));
  site.write("big.bin.tmp", std::string(90 * 1024, 'y'));
  std::filesystem::rename(site.dir / "big.bin.tmp", site.dir / "big.bin");  // a new inode
  c->advance(milliseconds(1));  // a later loop iteration (the kept descriptor is checked once per iteration)
  c->feed(req("/big.bin"));
  auto rs = split_responses(c->take_output());
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].body == std::string(90 * 1024, 'y'));
  CHECK_FALSE(c->closed());
}

namespace {
std::string numbered(std::string_view prefix, int i, std::string_view suffix) {
  std::string s(prefix);  // appended piecewise: GCC 12 warns (-Wrestrict) on "f" + ...
  s += std::to_string(i);
  s += suffix;
  return s;
}
}  // namespace

TEST_CASE("the file cache counts everything it holds, prepared responses included") {
  Site site;
  for (int i = 0; i < 20; ++i) site.write(numbered("f", i, ".txt"), std::string(8 * 1024, char('a' + i)));
  HttpOptions o;
  o.cache_max_bytes = 64 * 1024;
  auto r = responder_for(&site, o);
  auto c = connection(r);
  c->feed(req("/f0.txt"));
  split_responses(c->take_output());
  size_t one = r->cache().bytes();
  CHECK(one >= 8 * 1024 + 200);  // the body, and the head prepared with it
  CHECK(one < 8 * 1024 + 2048);
  std::string etag;
  c->feed(req("/f0.txt"));
  etag = split_responses(c->take_output())[0].header("ETag");
  c->feed(req("/f0.txt", "If-None-Match: " + etag + "\r\n"));
  CHECK(split_responses(c->take_output())[0].status == 304);
  CHECK(r->cache().bytes() > one);  // the prepared 304 counts too
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 20; ++i) {
      c->feed(req(numbered("/f", i, ".txt")));
      auto rs = split_responses(c->take_output());
      REQUIRE(rs.size() == 1);
      CHECK(rs[0].body == std::string(8 * 1024, char('a' + i)));
      CHECK(r->cache().bytes() <= o.cache_max_bytes);
    }
}

TEST_CASE("the portable resolver: files beneath the root, symlinks kept inside") {
  Site site;
  site.write("inside/file.txt", "inside\n");
  char tmpl[] = "/tmp/netloop-outside-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::filesystem::path outside = tmpl;
  {
    FILE* f = std::fopen((outside / "secret.txt").c_str(), "wb");
    REQUIRE(f);
    std::fputs("SECRET\n", f);
    std::fclose(f);
  }
  std::filesystem::create_symlink(outside / "secret.txt", site.dir / "escape.txt");
  std::filesystem::create_symlink(outside, site.dir / "escape_dir");
  std::filesystem::create_symlink("inside/file.txt", site.dir / "link.txt");
  std::filesystem::create_symlink(site.dir / "inside", site.dir / "abs_link");  // absolute, inside
  HttpOptions o;
  o.root = site.dir.string();
  for (auto resolver : {RootDirectory::Resolver::automatic, RootDirectory::Resolver::portable}) {
    CAPTURE(int(resolver));
    auto made = HttpResponder::create(o, resolver);
    REQUIRE(made.ok());
    auto r = *made;
    if (resolver == RootDirectory::Resolver::portable) CHECK_FALSE(r->root()->uses_openat2());
    CHECK(ask(r, req("/inside/file.txt")).body == "inside\n");
    CHECK(ask(r, req("/link.txt")).body == "inside\n");
    CHECK(ask(r, req("/abs_link/file.txt")).body == "inside\n");
    CHECK(ask(r, req("/index.html")).status == 200);
    Response esc = ask(r, req("/escape.txt"));
    CHECK(esc.status == 403);
    CHECK(esc.body.find("SECRET") == std::string::npos);
    CHECK(ask(r, req("/escape_dir/secret.txt")).status == 403);
    CHECK(ask(r, req("/missing.txt")).status == 404);
  }
  std::filesystem::remove_all(outside);
}

namespace {

// Runs `body` in a child process whose openat2 calls fail with EPERM (as a seccomp profile
// makes them); its exit code: 0 when every check in it held, else which one failed.
int in_child_without_openat2(const std::function<int()>& body) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (!nltest::refuse_syscall(__NR_openat2, EPERM)) ::_exit(10);
    ::_exit(body());
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

}  // namespace

TEST_CASE("openat2 refused at start-up (seccomp EPERM): the portable way from the start") {
  Site site;
  site.write("sub/f.txt", "portable\n");
  // Exit codes say which check failed.
  int failed = in_child_without_openat2([&site] {
    HttpOptions o;
    o.root = site.dir.string();
    auto made = HttpResponder::create(o);
    if (!made.ok()) return 2;
    auto r = *made;
    if (r->root()->uses_openat2()) return 3;
    auto c = connection(r);
    c->feed(req("/sub/f.txt"));
    std::string out = c->take_output();
    if (out.find("200 OK") == std::string::npos || out.find("portable\n") == std::string::npos) return 4;
    return 0;
  });
  CHECK(failed == 0);
}

TEST_CASE("openat2 available: one EPERM later is about that file, not a switch for good") {
  Site site;
  HttpOptions o;
  o.root = site.dir.string();
  auto r = responder_for(&site);
  if (!r->root()->uses_openat2()) {
    MESSAGE("skipped: this kernel has no openat2, so there is nothing to switch from");
    return;
  }
  // The filter comes after the start-up probe: now every openat2 says EPERM.
  int failed = in_child_without_openat2([&r] {
    auto c = connection(r);
    c->feed(req("/a.txt"));
    std::string out = c->take_output();
    if (out.find("403 Forbidden") == std::string::npos) return 5;
    if (!r->root()->uses_openat2()) return 6;
    return 0;
  });
  CHECK(failed == 0);
}

TEST_CASE("metrics endpoint: its own connection cap, the HTTP timeouts, and backpressure") {
  MetricsOptions mo;
  mo.max_connections = 3;
  mo.http.header_timeout = seconds(2);
  mo.http.keepalive_timeout = seconds(5);
  int renders = 0;
  auto factory = metrics_factory([&renders] {
    ++renders;
    return std::string(4000, 'm');
  }, mo);
  SUBCASE("past the cap: 503 and close; a slot frees when a connection goes") {
    std::vector<std::unique_ptr<MemoryConnection>> open;
    for (int i = 0; i < 3; ++i) open.push_back(connection_of(factory));
    auto extra = connection_of(factory);
    auto rs = split_responses(extra->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == 503);
    CHECK(extra->closed());
    open[0]->peer_reset();
    open.erase(open.begin());
    auto again = connection_of(factory);
    again->feed(req("/metrics"));
    auto ok = split_responses(again->take_output());
    REQUIRE(ok.size() == 1);
    CHECK(ok[0].status == 200);
    CHECK(ok[0].body == std::string(4000, 'm'));
  }
  SUBCASE("header timeout: 408; idle keep-alive: closed") {
    auto slow = connection_of(factory);
    slow->feed("GET /metrics HTTP/1.1\r\n");
    slow->advance(milliseconds(2100));
    auto rs = split_responses(slow->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == 408);
    CHECK(slow->closed());
    auto idle = connection_of(factory);
    idle->feed(req("/metrics"));
    idle->take_output();
    idle->advance(milliseconds(5100));
    CHECK(idle->closed());
  }
  SUBCASE("2,000 pipelined scrapes from a peer that does not read: output stays bounded") {
    MemoryOptions m;
    m.high_water = 64 * 1024;
    m.low_water = 16 * 1024;
    auto c = connection_of(factory, m);
    c->set_peer_reading(false);
    std::string batch;
    for (int i = 0; i < 2000; ++i) batch += req("/metrics");
    c->feed(batch);
    CHECK(c->pending() < m.high_water + 8 * 1024);
    CHECK(renders < 40);
    CHECK_FALSE(c->closed());
    size_t answered = 0;
    for (int round = 0; round < 400 && answered < 2000; ++round) {
      c->peer_reads();
      answered += split_responses(c->take_output()).size();
      CHECK(c->pending() < m.high_water + 8 * 1024);
    }
    CHECK(answered == 2000);
  }
  SUBCASE("other paths and methods") {
    auto c = connection_of(factory);
    std::string batch = req("/");  // appended piecewise: GCC 12 warns (-Wrestrict) on a + b + c
    batch += req("/metrics", {}, "POST");
    batch += req("/metrics", {}, "HEAD");
    c->feed(batch);
    std::string out = c->take_output();
    CHECK(out.find("404 Not Found") != std::string::npos);
    CHECK(out.find("405 Method Not Allowed") != std::string::npos);
    CHECK(out.find("200 OK") != std::string::npos);
  }
}

TEST_CASE("large files keep their descriptor open, a bounded number of them; an edit in place is seen") {
  Site site;
  const size_t n = FileCache::kMaxKept + 20;
  const std::string body(70 * 1024, 'k');
  for (size_t i = 0; i < n; ++i) site.write(numbered("big", int(i), ".bin"), body);
  HttpOptions o;
  o.cache_revalidate = seconds(3600);
  o.cache_max_bytes = 64 * 1024 * 1024;
  auto r = responder_for(&site, o);
  auto c = connection(r);
  for (size_t i = 0; i < n; ++i) {
    c->feed(req(numbered("/big", int(i), ".bin")));
    auto rs = split_responses(c->take_output());
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].body.size() == body.size());
  }
  CHECK(r->cache().kept() == FileCache::kMaxKept);
  // Served again from the kept descriptor: the same bytes, as often as asked within one
  // loop iteration (one fstat of the kept descriptor for all of them).
  for (int i = 0; i < 3; ++i) {
    c->feed(req("/big0.bin", "Range: bytes=65536-65545\r\n"));
    CHECK(split_responses(c->take_output())[0].body == "kkkkkkkkkk");
  }
  // Rewritten in place (the same inode, another size): the kept descriptor's fstat tells,
  // and the new content goes out with headers that fit it.
  {
    FILE* f = std::fopen((site.dir / "big0.bin").c_str(), "r+b");
    REQUIRE(f);
    std::string changed(80 * 1024, 'n');
    std::fwrite(changed.data(), 1, changed.size(), f);
    std::fclose(f);
  }
  c->advance(milliseconds(1));  // a later loop iteration
  c->feed(req("/big0.bin"));
  auto rs = split_responses(c->take_output());
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].body == std::string(80 * 1024, 'n'));
  CHECK_FALSE(c->closed());
}
