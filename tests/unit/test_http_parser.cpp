// Unit tests for the HTTP/1.x request-head parser (protocols/http/request_parser.cpp): one
// table of raw requests, valid and malformed, each parsed one-shot, byte by byte through
// one parser object, and (for the valid ones) cut short at every length. Every input is
// placed so that it ends exactly where a PROT_NONE page begins (the picohttpparser trick):
// a read past the end of the input is a crash, not a silent pass.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "http/request_parser.hpp"

using namespace std::string_literals;
using netloop::http::Header;
using netloop::http::kMaxHeaders;
using netloop::http::Method;
using netloop::http::ParseResult;
using netloop::http::ParserLimits;
using netloop::http::ParseStatus;
using netloop::http::Request;
using netloop::http::RequestParser;

namespace {

// Names for messages (doctest prints enums as numbers).
std::string_view st(ParseStatus s) {
  switch (s) {
    case ParseStatus::complete:
      return "complete";
    case ParseStatus::need_more:
      return "need_more";
    case ParseStatus::error:
      return "error";
  }
  return "ParseStatus(?)";
}
std::string_view mt(Method m) { return netloop::http::to_string(m); }

// Readable pages followed by one PROT_NONE page. place() copies bytes so that they end
// exactly at the guard page and returns the view of them there.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t capacity) {
    page_ = size_t(::sysconf(_SC_PAGESIZE));
    data_bytes_ = (capacity + page_ - 1) / page_ * page_;
    if (data_bytes_ == 0) data_bytes_ = page_;
    void* p = ::mmap(nullptr, data_bytes_ + page_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    base_ = static_cast<char*>(p);
    REQUIRE(::mprotect(base_ + data_bytes_, page_, PROT_NONE) == 0);
  }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  ~GuardedBuffer() { ::munmap(base_, data_bytes_ + page_); }

  std::string_view place(std::string_view bytes) {
    REQUIRE(bytes.size() <= data_bytes_);
    char* end = base_ + data_bytes_;
    char* start = end - bytes.size();
    if (!bytes.empty()) std::memcpy(start, bytes.data(), bytes.size());
    return {start, bytes.size()};
  }

 private:
  size_t page_ = 0;
  size_t data_bytes_ = 0;
  char* base_ = nullptr;
};

// Escapes CR, LF and other non-printables, for failure messages; long inputs are cut.
std::string escaped(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  if (s.size() > 160) {
    return escaped(s.substr(0, 100)) + "...(" + std::to_string(s.size() - 140) + " more bytes)..." +
           escaped(s.substr(s.size() - 40));
  }
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\r')
      out += "\\r";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\\')
      out += "\\\\";
    else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out;
}

// True when `v` lies inside `in` (an empty view without data counts as inside).
bool inside(std::string_view v, std::string_view in) {
  if (v.empty() && v.data() == nullptr) return true;
  return v.data() >= in.data() && v.data() + v.size() <= in.data() + in.size();
}

ParserLimits line_limit(size_t n) {
  ParserLimits l;
  l.max_request_line = n;
  return l;
}
ParserLimits head_limit(size_t n) {
  ParserLimits l;
  l.max_head_bytes = n;
  return l;
}
ParserLimits header_limit(size_t n) {
  ParserLimits l;
  l.max_headers = n;
  return l;
}
ParserLimits empty_line_limit(size_t n) {
  ParserLimits l;
  l.max_empty_lines = n;
  return l;
}

// "GET /aaa HTTP/1.1" exactly `len` bytes long (len >= 14), without its CRLF.
std::string request_line(size_t len) { return "GET /" + std::string(len - 14, 'a') + " HTTP/1.1"; }
// A whole head of exactly `len` bytes (len >= 32): request line, Host and a filler field.
std::string head_of(size_t len) {
  return "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(len - 32, 'x') + "\r\n\r\n";
}
// A 1.1 head with Host and then `extra` more fields.
std::string with_fields(size_t extra, bool finished = true) {
  std::string s = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (size_t i = 0; i < extra; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
  if (finished) s += "\r\n";
  return s;
}

struct Expect {
  Method method = Method::get;
  std::string method_name = "GET";
  std::optional<std::string> target;  // checked when set
  std::string path = "/";
  std::string query;
  unsigned version_minor = 1;
  std::string host = "h";
  bool has_host = true;
  bool keep_alive = true;
  bool has_content_length = false;
  uint64_t content_length = 0;
  size_t headers = 1;
};

struct Row {
  std::string name;
  std::string raw;
  ParseStatus status = ParseStatus::complete;
  uint16_t http_status = 0;  // errors
  Expect e;                  // complete
  size_t trailing = 0;       // complete: bytes after the head (a body, the next request)
  ParserLimits lim;

  size_t head_size() const { return raw.size() - trailing; }

  Row& method(Method m, std::string name_as_sent) {
    e.method = m;
    e.method_name = std::move(name_as_sent);
    return *this;
  }
  Row& target(std::string t) {
    e.target = std::move(t);
    return *this;
  }
  Row& path(std::string p) {
    e.path = std::move(p);
    return *this;
  }
  Row& query(std::string q) {
    e.query = std::move(q);
    return *this;
  }
  Row& minor(unsigned m) {
    e.version_minor = m;
    return *this;
  }
  Row& host(std::string h) {
    e.host = std::move(h);
    e.has_host = true;
    return *this;
  }
  Row& no_host() {
    e.host.clear();
    e.has_host = false;
    return *this;
  }
  Row& keep_alive(bool k) {
    e.keep_alive = k;
    return *this;
  }
  Row& content_length(uint64_t n) {
    e.has_content_length = true;
    e.content_length = n;
    return *this;
  }
  Row& headers(size_t n) {
    e.headers = n;
    return *this;
  }
  Row& then(size_t bytes) {
    trailing = bytes;
    return *this;
  }
  Row& limits(const ParserLimits& l) {
    lim = l;
    return *this;
  }
};

// A valid head; by default "GET /" HTTP/1.1 with one field, Host: h.
Row ok(std::string name, std::string raw) {
  Row r;
  r.name = std::move(name);
  r.raw = std::move(raw);
  return r;
}
Row bad(std::string name, std::string raw, uint16_t http_status) {
  Row r;
  r.name = std::move(name);
  r.raw = std::move(raw);
  r.status = ParseStatus::error;
  r.http_status = http_status;
  return r;
}
Row more(std::string name, std::string raw) {
  Row r;
  r.name = std::move(name);
  r.raw = std::move(raw);
  r.status = ParseStatus::need_more;
  return r;
}

const std::string kEnd = "Host: h\r\n\r\n";  // the rest of a minimal 1.1 head

// Simple requests.
void add_simple_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(ok("GET 1.1", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n").host("example.com").target("/"));
  add(ok("HEAD 1.1", "HEAD /index.html HTTP/1.1\r\nHost: h\r\n\r\n")
          .method(Method::head, "HEAD")
          .path("/index.html"));
  add(ok("GET 1.0 without Host", "GET / HTTP/1.0\r\n\r\n")
          .minor(0)
          .no_host()
          .keep_alive(false)
          .headers(0));
  add(ok("HEAD 1.0 with Host", "HEAD /x HTTP/1.0\r\nHost: h\r\n\r\n")
          .method(Method::head, "HEAD")
          .path("/x")
          .minor(0)
          .keep_alive(false));
  add(ok("several fields",
         "GET /a/b.css HTTP/1.1\r\nHost: h\r\nUser-Agent: t/1.0\r\nAccept: */*\r\n"
         "Accept-Encoding: gzip, br\r\nX-Empty:\r\n\r\n")
          .path("/a/b.css")
          .headers(5));
  add(ok("field name case does not matter", "GET / HTTP/1.1\r\nhOsT: h\r\n\r\n"));
  // Host and Connection are matched a word at a time with their colon, letters folded:
  // upper case, names that only start the same, and a control byte that folds onto ':'.
  add(ok("HOST in capitals", "GET / HTTP/1.1\r\nHOST: cap\r\n\r\n").host("cap"));
  add(ok("Host-Name is another field", "GET / HTTP/1.1\r\nHost-Name: x\r\nHost: h\r\n\r\n")
          .host("h")
          .headers(2));
  add(ok("Hostx is another field", "GET / HTTP/1.1\r\nHostx: x\r\nHost: h\r\n\r\n")
          .host("h")
          .headers(2));
  add(bad("Host then 0x1a (0x1a | 0x20 is ':')", "GET / HTTP/1.1\r\nHost\x1a h\r\n\r\n", 400));
  add(bad("Connection then 0x1a (0x1a | 0x20 is ':')",
          "GET / HTTP/1.1\r\nHost: h\r\nConnection\x1a close\r\n\r\n", 400));
  add(bad("Host\x0f (a control where a letter is folded)",
          "GET / HTTP/1.1\r\nH\x0fst: h\r\n\r\n", 400));
  add(ok("no OWS after the colon", "GET / HTTP/1.1\r\nHost:h\r\n\r\n"));
  add(ok("OWS (SP and HTAB) around the value is trimmed",
         "GET / HTTP/1.1\r\nHost: \t h \t \r\n\r\n"));
  add(ok("empty Host in 1.1", "GET / HTTP/1.1\r\nHost:\r\n\r\n").host(""));
  add(ok("Host with a port", "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n")
          .host("example.com:8080"));
  add(ok("Host IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").host("[::1]:8080"));
  add(ok("HTAB inside a value", "GET / HTTP/1.1\r\nHost: h\r\nX-Tab: a\tb\r\n\r\n").headers(2));
  add(ok("obs-text in a value", "GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9 \x80\xff\r\n\r\n")
          .headers(2));
  add(ok("every tchar in a field name",
         "GET / HTTP/1.1\r\nHost: h\r\n!#$%&'*+-.^_`|~09Az: v\r\n\r\n")
          .headers(2));
}

// Request targets.
void add_targets_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(ok("query string", "GET /search?q=a+b&x=%20 HTTP/1.1\r\n" + kEnd)
          .path("/search")
          .query("q=a+b&x=%20")
          .target("/search?q=a+b&x=%20"));
  add(ok("empty query", "GET /a? HTTP/1.1\r\n" + kEnd).path("/a").query(""));
  add(ok("'?' and '/' inside the query", "GET /a?b=/c?d HTTP/1.1\r\n" + kEnd)
          .path("/a")
          .query("b=/c?d"));
  add(ok("every allowed target character", "GET /a-._~!$&'()*+,;=:@%20[]/Z9 HTTP/1.1\r\n" + kEnd)
          .path("/a-._~!$&'()*+,;=:@%20[]/Z9"));
  add(ok("path is raw (no decoding, no dot resolution)", "GET /a/../%2e%2E/./b HTTP/1.1\r\n" + kEnd)
          .path("/a/../%2e%2E/./b"));
  add(ok("absolute-form http",
         "GET http://example.com/path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
          .host("example.com")
          .path("/path")
          .query("q=1")
          .target("http://example.com/path?q=1"));
  add(ok("absolute-form https with a port",
         "GET https://example.com:8443/a HTTP/1.1\r\nHost: example.com:8443\r\n\r\n")
          .host("example.com:8443")
          .path("/a"));
  add(ok("absolute-form without a path is '/'",
         "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n")
          .host("example.com")
          .path("/")
          .target("http://example.com"));
  add(ok("absolute-form without a path, with a query", "GET http://h?x=1 HTTP/1.1\r\n" + kEnd)
          .path("/")
          .query("x=1"));
  add(ok("absolute-form: the target's authority wins over Host",
         "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n")
          .host("a.example"));
  add(ok("absolute-form: scheme is case-insensitive", "GET HTTP://h/x HTTP/1.1\r\n" + kEnd)
          .path("/x"));
  add(ok("absolute-form IPv6 authority",
         "GET http://[::1]:8080/x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")
          .host("[::1]:8080")
          .path("/x"));
  add(ok("absolute-form in 1.0 without Host", "GET http://h/x HTTP/1.0\r\n\r\n")
          .minor(0)
          .keep_alive(false)
          .path("/x")
          .headers(0));
  add(ok("asterisk-form", "OPTIONS * HTTP/1.1\r\n" + kEnd)
          .method(Method::options, "OPTIONS")
          .path("")
          .target("*"));
  add(bad("absolute-form with userinfo", "GET http://user@h/ HTTP/1.1\r\n" + kEnd, 400));
  add(bad("absolute-form with user:password", "GET http://u:p@h/ HTTP/1.1\r\n" + kEnd, 400));
  add(bad("absolute-form with an empty authority", "GET http:///x HTTP/1.1\r\n" + kEnd, 400));
  add(bad("absolute-form with another scheme", "GET ftp://h/x HTTP/1.1\r\n" + kEnd, 400));
  add(bad("scheme without '//'", "GET http:/x HTTP/1.1\r\n" + kEnd, 400));
  add(bad("relative target", "GET a/b HTTP/1.1\r\n" + kEnd, 400));
  add(bad("authority-form (CONNECT proxying is not served)", "CONNECT h:443 HTTP/1.1\r\n" + kEnd,
          400));
  add(bad("'\"' in the target", "GET /a\"b HTTP/1.1\r\n" + kEnd, 400));
  add(bad("'<' in the target", "GET /<script> HTTP/1.1\r\n" + kEnd, 400));
  add(bad("'{' in the target", "GET /{x} HTTP/1.1\r\n" + kEnd, 400));
  add(bad("'#' in the target", "GET /a#frag HTTP/1.1\r\n" + kEnd, 400));
  add(bad("'\\' in the target", "GET /a\\b HTTP/1.1\r\n" + kEnd, 400));
  add(bad("'|', '^' and '`' in the target", "GET /a|b^c`d HTTP/1.1\r\n" + kEnd, 400));
  add(bad("non-ASCII byte in the target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" + kEnd, 400));
  add(bad("NUL in the target", "GET /a\0b HTTP/1.1\r\n"s + kEnd, 400));
  add(bad("HTAB in the target", "GET /a\tb HTTP/1.1\r\n" + kEnd, 400));
  add(bad("space inside the target", "GET /a b HTTP/1.1\r\n" + kEnd, 400));
}

// Request line shape.
void add_request_line_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(bad("two spaces after the method", "GET  / HTTP/1.1\r\n" + kEnd, 400));
  add(bad("two spaces before the version", "GET /  HTTP/1.1\r\n" + kEnd, 400));
  add(bad("space before the method", " GET / HTTP/1.1\r\n" + kEnd, 400));
  add(bad("trailing space after the version", "GET / HTTP/1.1 \r\n" + kEnd, 400));
  add(bad("no version", "GET /\r\n" + kEnd, 400));
  add(bad("method only", "GET\r\n" + kEnd, 400));
  add(bad("lowercase http/1.1", "GET / http/1.1\r\n" + kEnd, 400));
  add(bad("HTTP/1.10", "GET / HTTP/1.10\r\n" + kEnd, 400));
  add(bad("HTTP/1", "GET / HTTP/1\r\n" + kEnd, 400));
  add(bad("HTTP/1.x", "GET / HTTP/1.x\r\n" + kEnd, 400));
  add(bad("HTTPS/1.1", "GET / HTTPS/1.1\r\n" + kEnd, 400));
  add(bad("HTTP/2.0", "GET / HTTP/2.0\r\n" + kEnd, 505));
  add(bad("HTTP/3.0", "GET / HTTP/3.0\r\n" + kEnd, 505));
  add(bad("HTTP/0.9", "GET / HTTP/0.9\r\n" + kEnd, 505));
  add(bad("HTTP/9.9", "GET / HTTP/9.9\r\n" + kEnd, 505));
  add(ok("HTTP/1.2 is served as 1.1", "GET / HTTP/1.2\r\n" + kEnd).minor(1));
  add(ok("HTTP/1.9 is served as 1.1", "GET / HTTP/1.9\r\n" + kEnd).minor(1));
}

// Methods.
void add_methods_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(ok("POST", "POST /f HTTP/1.1\r\n" + kEnd).method(Method::post, "POST").path("/f"));
  add(ok("PUT", "PUT /f HTTP/1.1\r\n" + kEnd).method(Method::put, "PUT").path("/f"));
  add(ok("DELETE", "DELETE /f HTTP/1.1\r\n" + kEnd).method(Method::delete_, "DELETE").path("/f"));
  add(ok("PATCH", "PATCH /f HTTP/1.1\r\n" + kEnd).method(Method::patch, "PATCH").path("/f"));
  add(ok("TRACE", "TRACE /f HTTP/1.1\r\n" + kEnd).method(Method::trace, "TRACE").path("/f"));
  add(ok("CONNECT (origin-form)", "CONNECT / HTTP/1.1\r\n" + kEnd)
          .method(Method::connect, "CONNECT"));
  add(ok("unknown method is parsed (the responder says 501)", "BREW /pot HTTP/1.1\r\n" + kEnd)
          .method(Method::unknown, "BREW")
          .path("/pot"));
  add(ok("lowercase get is not GET", "get / HTTP/1.1\r\n" + kEnd).method(Method::unknown, "get"));
  add(ok("GETS is not GET", "GETS / HTTP/1.1\r\n" + kEnd).method(Method::unknown, "GETS"));
  add(ok("method with tchar punctuation", "M-SEARCH! / HTTP/1.1\r\n" + kEnd)
          .method(Method::unknown, "M-SEARCH!"));
  add(bad("'(' in the method", "GE(T / HTTP/1.1\r\n" + kEnd, 400));
  add(bad("'\"' in the method", "G\"ET / HTTP/1.1\r\n" + kEnd, 400));
  add(bad("'@' in the method", "GET@ / HTTP/1.1\r\n" + kEnd, 400));
  add(bad("non-ASCII method", "G\xc3\x89T / HTTP/1.1\r\n" + kEnd, 400));
  add(bad("control character in the method",
          "G\x01"
          "ET / HTTP/1.1\r\n" +
              kEnd,
          400));
}

// Line ends.
void add_line_ends_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(bad("bare LF after the request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400));
  add(bad("bare LF after a field", "GET / HTTP/1.1\r\nHost: h\n\r\n", 400));
  add(bad("bare LF as the final empty line", "GET / HTTP/1.1\r\nHost: h\r\n\n", 400));
  add(bad("bare LFs only", "GET / HTTP/1.1\nHost: h\n\n", 400));
  add(bad("bare LF as a leading empty line", "\nGET / HTTP/1.1\r\n" + kEnd, 400));
  add(bad("bare LF inside a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n", 400));
  add(bad("CR without LF in the request line", "GET / HTTP/1.1\rHost: h\r\n\r\n", 400));
  add(bad("CR without LF in a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400));
  add(bad("CRCRLF", "GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", 400));
  add(ok("one leading empty line", "\r\nGET / HTTP/1.1\r\n" + kEnd));
  add(ok("four leading empty lines (the limit)", "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" + kEnd));
  add(bad("five leading empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" + kEnd, 400));
  add(bad("five empty lines and nothing else", "\r\n\r\n\r\n\r\n\r\n", 400));
  add(bad("an empty line when none is tolerated", "\r\nGET / HTTP/1.1\r\n" + kEnd, 400)
          .limits(empty_line_limit(0)));
}

// Field lines.
void add_fields_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(bad("obs-fold with SP", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400));
  add(bad("obs-fold with HTAB", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400));
  add(bad("first field line starts with SP", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400));
  add(bad("SP before the colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400));
  add(bad("HTAB before the colon", "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400));
  add(bad("empty field name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400));
  add(bad("field line without a colon", "GET / HTTP/1.1\r\nHost: h\r\nX v\r\n\r\n", 400));
  add(bad("SP inside a field name", "GET / HTTP/1.1\r\nHost: h\r\nX Y: v\r\n\r\n", 400));
  add(bad("NUL in a field name", "GET / HTTP/1.1\r\nHost: h\r\nX\0Y: v\r\n\r\n"s, 400));
  add(bad("DEL in a field name", "GET / HTTP/1.1\r\nHost: h\r\nX\x7fY: v\r\n\r\n", 400));
  add(bad("'(' in a field name", "GET / HTTP/1.1\r\nHost: h\r\nX(Y): v\r\n\r\n", 400));
  add(bad("non-ASCII field name", "GET / HTTP/1.1\r\nHost: h\r\nX\xc3\xa9: v\r\n\r\n", 400));
  add(bad("NUL in a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"s, 400));
  add(bad("DEL in a value",
          "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f"
          "b\r\n\r\n",
          400));
  add(bad("0x01 in a value",
          "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01"
          "b\r\n\r\n",
          400));
  add(bad("ESC in a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x1b[0m\r\n\r\n", 400));
  add(bad("VT in a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\vb\r\n\r\n", 400));
  add(bad("0x1f in a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x1f\r\n\r\n", 400));
}

// Host.
void add_host_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(bad("missing Host in 1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400));
  add(bad("missing Host in 1.1, no fields at all", "GET / HTTP/1.1\r\n\r\n", 400));
  add(bad("absolute-form does not excuse a missing Host in 1.1", "GET http://h/ HTTP/1.1\r\n\r\n",
          400));
  add(bad("two Host fields", "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", 400));
  add(bad("two Host fields in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400));
  add(bad("Host with '/'", "GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", 400));
  add(bad("Host with '@'", "GET / HTTP/1.1\r\nHost: user@h\r\n\r\n", 400));
  add(bad("Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400));
  add(bad("Host with a non-ASCII byte", "GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", 400));
}

// Content-Length and Transfer-Encoding.
void add_body_length_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(ok("Content-Length with its body after the head",
         "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
          .method(Method::post, "POST")
          .path("/up")
          .content_length(5)
          .headers(2)
          .then(5));
  add(ok("the body is not scanned (bare LF in it is fine)",
         "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\na\nb\r")
          .method(Method::post, "POST")
          .content_length(4)
          .headers(2)
          .then(4));
  add(ok("Content-Length: 0", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
          .content_length(0)
          .headers(2));
  add(ok("Content-Length name in lowercase",
         "GET / HTTP/1.1\r\nHost: h\r\ncontent-length: 12\r\n\r\n")
          .content_length(12)
          .headers(2));
  add(ok("Content-Length with OWS", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length:  42 \r\n\r\n")
          .content_length(42)
          .headers(2));
  add(ok("Content-Length with leading zeros",
         "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n")
          .content_length(7)
          .headers(2));
  add(ok("Content-Length of 18 digits",
         "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999999999999\r\n\r\n")
          .content_length(999999999999999999ull)
          .headers(2));
  add(bad("Content-Length of 19 digits",
          "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000000000000\r\n\r\n", 400));
  add(bad("Content-Length past 2^64",
          "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551617\r\n\r\n", 400));
  add(bad("Content-Length repeated with equal values",
          "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400));
  add(bad("Content-Length repeated with other values",
          "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", 400));
  add(bad("Content-Length empty", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400));
  add(bad("Content-Length only OWS", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length:   \r\n\r\n",
          400));
  add(bad("Content-Length not a number", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n",
          400));
  add(bad("Content-Length list '5, 5'", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
          400));
  add(bad("Content-Length negative", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
          400));
  add(bad("Content-Length with '+'", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
          400));
  add(bad("Content-Length hex", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400));
  add(bad("Content-Length with inner space",
          "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n", 400));
  add(bad("Transfer-Encoding: chunked",
          "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 400));
  add(bad("Transfer-Encoding: identity",
          "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 400));
  add(bad("Transfer-Encoding empty, lowercase name",
          "POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding:\r\n\r\n", 400));
  add(bad("Transfer-Encoding in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
          400));
  add(bad("Content-Length and Transfer-Encoding",
          "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
          400));
  add(bad("Transfer-Encoding and Content-Length",
          "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
          400));
}

// Connection.
void add_connection_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(ok("1.1 keeps alive by default", "GET / HTTP/1.1\r\n" + kEnd).keep_alive(true));
  add(ok("1.1 Connection: close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
          .keep_alive(false)
          .headers(2));
  add(ok("1.1 Connection: CLOSE", "GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n")
          .keep_alive(false)
          .headers(2));
  add(ok("1.1 CONNECTION: close (name in capitals)",
         "GET / HTTP/1.1\r\nHost: h\r\nCONNECTION: close\r\n\r\n")
          .keep_alive(false)
          .headers(2));
  add(ok("1.1 cOnNeCtIoN: close", "GET / HTTP/1.1\r\nHost: h\r\ncOnNeCtIoN: close\r\n\r\n")
          .keep_alive(false)
          .headers(2));
  add(ok("1.1 Connections: close is another field",
         "GET / HTTP/1.1\r\nHost: h\r\nConnections: close\r\n\r\n")
          .keep_alive(true)
          .headers(2));
  add(ok("1.1 Connectio: close is another field",
         "GET / HTTP/1.1\r\nHost: h\r\nConnectio: close\r\n\r\n")
          .keep_alive(true)
          .headers(2));
  add(ok("1.1 Connection: keep-alive",
         "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
          .keep_alive(true)
          .headers(2));
  add(ok("1.1 Connection: Keep-Alive, Upgrade",
         "GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, Upgrade\r\n\r\n")
          .keep_alive(true)
          .headers(2));
  add(ok("1.1 Connection: upgrade,close",
         "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade,close\r\n\r\n")
          .keep_alive(false)
          .headers(2));
  add(ok("1.1 Connection: keep-alive, close (close wins)",
         "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n")
          .keep_alive(false)
          .headers(2));
  add(ok("1.1 Connection: closed (not the token close)",
         "GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n")
          .keep_alive(true)
          .headers(2));
  add(ok("1.0 closes by default", "GET / HTTP/1.0\r\nHost: h\r\n\r\n").minor(0).keep_alive(false));
  add(ok("1.0 Connection: keep-alive",
         "GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
          .minor(0)
          .keep_alive(true)
          .headers(2));
  add(ok("1.0 Connection: Keep-Alive, Upgrade",
         "GET / HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive, Upgrade\r\n\r\n")
          .minor(0)
          .keep_alive(true)
          .headers(2));
  add(ok("1.0 Connection: close", "GET / HTTP/1.0\r\nConnection: close\r\n\r\n")
          .minor(0)
          .no_host()
          .keep_alive(false)
          .headers(1));
  add(ok("1.2 keeps alive by default", "GET / HTTP/1.2\r\n" + kEnd).keep_alive(true));
  // Several Connection lines are one list: a close in any of them wins (RFC 9110 §7.6.1).
  add(ok("1.1 Connection: close, then Connection: keep-alive",
         "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n")
          .keep_alive(false)
          .headers(3));
  add(ok("1.1 Connection: keep-alive, then Connection: close",
         "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n")
          .keep_alive(false)
          .headers(3));
  add(ok("1.0 Connection: close, then Connection: keep-alive",
         "GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n")
          .minor(0)
          .no_host()
          .keep_alive(false)
          .headers(2));
  add(ok("1.0 Connection: upgrade, then Connection: keep-alive",
         "GET / HTTP/1.0\r\nConnection: upgrade\r\nConnection: keep-alive\r\n\r\n")
          .minor(0)
          .no_host()
          .keep_alive(true)
          .headers(2));
}

// Pipelining: the first head only.
void add_pipelining_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  {
    const std::string one = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
    const std::string two = "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
    add(ok("two pipelined requests", one + two).path("/1").then(two.size()));
    const std::string one0 = "\r\n\r\nGET /1 HTTP/1.0\r\n\r\n";
    const std::string two0 = "GET /2 HTTP/1.0\r\n\r\n";
    add(ok("pipelined after leading empty lines", one0 + two0)
            .path("/1")
            .minor(0)
            .no_host()
            .keep_alive(false)
            .headers(0)
            .then(two0.size()));
  }
}

// Incomplete heads.
void add_incomplete_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(more("empty input", ""));
  add(more("method only, no LF", "GET"));
  add(more("request line without its LF", "GET / HTTP/1.1\r"));
  add(more("fields but no empty line", "GET / HTTP/1.1\r\nHost: h\r\n"));
  add(more("final CR without its LF", "GET / HTTP/1.1\r\nHost: h\r\n\r"));
  add(more("empty lines only", "\r\n\r\n\r\n\r\n"));
  add(more("a value with a NUL, not yet complete", "GET / HTTP/1.1\r\nX: a\0"s));
}

// Limits: the request line (414).
void add_line_limit_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(ok("request line exactly at the limit", request_line(32) + "\r\n" + kEnd)
          .path("/" + std::string(18, 'a'))
          .limits(line_limit(32)));
  add(ok("request line at the limit after empty lines",
         "\r\n\r\n" + request_line(32) + "\r\n" + kEnd)
          .path("/" + std::string(18, 'a'))
          .limits(line_limit(32)));
  add(bad("request line one past the limit", request_line(33) + "\r\n" + kEnd, 414)
          .limits(line_limit(32)));
  add(bad("request line one past the limit, no LF yet", request_line(33), 414)
          .limits(line_limit(32)));
  add(bad("request line one past the limit, CR but no LF yet", request_line(33) + "\r", 414)
          .limits(line_limit(32)));
  add(bad("request line far past the limit, no LF yet", "GET /" + std::string(200, 'a'), 414)
          .limits(line_limit(32)));
  add(more("request line at the limit, no CR yet", request_line(32)).limits(line_limit(32)));
  add(more("request line at the limit, CR but no LF yet", request_line(32) + "\r")
          .limits(line_limit(32)));
  add(bad("default limit: an 8 KiB + 1 request line", request_line(8 * 1024 + 1) + "\r\n" + kEnd,
          414));
  add(ok("default limit: an 8 KiB request line", request_line(8 * 1024) + "\r\n" + kEnd)
          .path("/" + std::string(8 * 1024 - 14, 'a')));
}

// Limits: the head (431).
void add_head_limits_rows(std::vector<Row>& t) {
  auto add = [&t](Row r) { t.push_back(std::move(r)); };
  add(ok("head exactly at the limit", head_of(64)).headers(2).limits(head_limit(64)));
  add(ok("head at the limit after empty lines (they do not count)", "\r\n\r\n" + head_of(64))
          .headers(2)
          .limits(head_limit(64)));
  add(bad("head one past the limit", head_of(65), 431).limits(head_limit(64)));
  add(bad("head past the limit, not yet complete",
          "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(40, 'x'), 431)
          .limits(head_limit(64)));
  add(bad("head one past the limit, only the final LF missing", head_of(66).substr(0, 65), 431)
          .limits(head_limit(64)));
  add(more("incomplete head at the limit", head_of(65).substr(0, 64)).limits(head_limit(65)));
  add(ok("header count at the limit", with_fields(2)).headers(3).limits(header_limit(3)));
  add(bad("header count one past the limit", with_fields(3), 431).limits(header_limit(3)));
  add(bad("header count past the limit, not yet complete", with_fields(3, false), 431)
          .limits(header_limit(3)));
  add(ok("default header count limit", with_fields(63)).headers(64));
  add(bad("default header count limit plus one", with_fields(64), 431));
  {
    ParserLimits many;
    many.max_headers = 1000;
    add(ok("kMaxHeaders fields with a larger limit", with_fields(kMaxHeaders - 1))
            .headers(kMaxHeaders)
            .limits(many));
    add(bad("kMaxHeaders + 1 fields with a larger limit", with_fields(kMaxHeaders), 431)
            .limits(many));
  }
}

std::vector<Row> make_rows() {
  std::vector<Row> t;
  add_simple_rows(t);
  add_targets_rows(t);
  add_request_line_rows(t);
  add_methods_rows(t);
  add_line_ends_rows(t);
  add_fields_rows(t);
  add_host_rows(t);
  add_body_length_rows(t);
  add_connection_rows(t);
  add_pipelining_rows(t);
  add_incomplete_rows(t);
  add_line_limit_rows(t);
  add_head_limits_rows(t);
  return t;
}

const std::vector<Row>& rows() {
  static const std::vector<Row> kRows = make_rows();
  return kRows;
}

// Checks a complete parse against the row's expectations; `in` is what was parsed.
void check_request(const Request& r, const Row& row, std::string_view in) {
  const Expect& e = row.e;
  CHECK(mt(r.method) == mt(e.method));
  CHECK(r.method_name == e.method_name);
  if (e.target) CHECK(r.target == *e.target);
  CHECK(r.path == e.path);
  CHECK(r.query == e.query);
  CHECK(unsigned(r.version_minor) == e.version_minor);
  CHECK(r.has_host == e.has_host);
  CHECK(r.host == e.host);
  CHECK(r.keep_alive == e.keep_alive);
  CHECK(r.has_content_length == e.has_content_length);
  CHECK(r.content_length == e.content_length);
  CHECK(r.header_count == e.headers);
  // Zero-copy: every view points into the input.
  CHECK(inside(r.method_name, in));
  CHECK(inside(r.target, in));
  CHECK((inside(r.path, in) || (r.path == "/" && !r.target.empty() && r.target.front() != '/')));
  CHECK(inside(r.query, in));
  CHECK(inside(r.host, in));
  for (size_t i = 0; i < r.header_count; ++i) {
    CAPTURE(i);
    CHECK(inside(r.headers[i].name, in));
    CHECK(inside(r.headers[i].value, in));
    CHECK(r.find(r.headers[i].name) != nullptr);
  }
}

}  // namespace

TEST_CASE("http parser: the table has enough rows, with unique names") {
  CHECK(rows().size() >= 70);
  std::set<std::string> names;
  for (const Row& row : rows()) {
    CAPTURE(row.name);
    CHECK(names.insert(row.name).second);
  }
  MESSAGE("rows: " << rows().size());
}

TEST_CASE("http parser: each table row, parsed in one call") {
  for (const Row& row : rows()) {
    CAPTURE(row.name);
    INFO("input: " << escaped(row.raw));
    GuardedBuffer buf(row.raw.size());
    std::string_view in = buf.place(row.raw);
    RequestParser parser(row.lim);
    Request req;
    ParseResult res = parser.parse(in, req);
    INFO("reason: " << res.reason);
    CHECK(st(res.status) == st(row.status));
    if (res.status != row.status) continue;
    switch (row.status) {
      case ParseStatus::error:
        CHECK(res.http_status == row.http_status);
        CHECK_FALSE(res.reason.empty());
        break;
      case ParseStatus::need_more:
        CHECK(res.http_status == 0);
        CHECK(res.consumed == 0);
        break;
      case ParseStatus::complete:
        CHECK(res.http_status == 0);
        CHECK(res.consumed == row.head_size());
        check_request(req, row, in);
        break;
    }
  }
}

TEST_CASE("http parser: each table row, fed byte by byte to one parser, gives the same result") {
  for (const Row& row : rows()) {
    CAPTURE(row.name);
    INFO("input: " << escaped(row.raw));
    GuardedBuffer buf(row.raw.size());
    RequestParser parser(row.lim);
    Request req;
    ParseResult res;
    std::string_view in;
    size_t fed = 0;
    // The input grows by one byte per call, and moves (it always ends at the guard page).
    for (fed = 0; fed <= row.raw.size(); ++fed) {
      in = buf.place(std::string_view(row.raw).substr(0, fed));
      res = parser.parse(in, req);
      if (res.status != ParseStatus::need_more) break;
    }
    INFO("stopped after " << fed << " of " << row.raw.size() << " bytes; reason: " << res.reason);
    CHECK(st(res.status) == st(row.status));
    if (res.status != row.status) continue;
    if (row.status == ParseStatus::error) {
      CHECK(res.http_status == row.http_status);
    } else if (row.status == ParseStatus::complete) {
      CHECK(fed == row.head_size());
      CHECK(res.consumed == row.head_size());
      check_request(req, row, in);
    }
  }
}

TEST_CASE("http parser: every proper prefix of a valid request needs more") {
  size_t heads = 0;
  for (const Row& row : rows()) {
    if (row.status != ParseStatus::complete) continue;
    ++heads;
    CAPTURE(row.name);
    INFO("input: " << escaped(row.raw));
    GuardedBuffer buf(row.raw.size());
    size_t first_bad = row.raw.size();
    ParseResult bad_result;
    for (size_t n = 0; n < row.head_size(); ++n) {
      RequestParser parser(row.lim);
      Request req;
      ParseResult res = parser.parse(buf.place(std::string_view(row.raw).substr(0, n)), req);
      if (res.status != ParseStatus::need_more) {
        first_bad = n;
        bad_result = res;
        break;
      }
    }
    INFO("prefix of " << first_bad << " bytes: " << st(bad_result.status) << " "
                      << bad_result.http_status << " " << bad_result.reason);
    CHECK(first_bad == row.raw.size());  // raw.size(): no prefix failed
    // And the head itself (without what follows) is complete.
    RequestParser parser(row.lim);
    Request req;
    ParseResult res =
        parser.parse(buf.place(std::string_view(row.raw).substr(0, row.head_size())), req);
    CHECK(st(res.status) == "complete");
    CHECK(res.consumed == row.head_size());
  }
  CHECK(heads >= 30);
}

TEST_CASE("http parser: pipelined requests are read one after the other after reset") {
  const std::string first = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string second = "HEAD /two?x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  const std::string third = "GET /three HTTP/1.1\r\nHo";
  const std::string all = first + second + third;
  GuardedBuffer buf(all.size());
  std::string_view in = buf.place(all);

  RequestParser parser;
  Request req;
  ParseResult r1 = parser.parse(in, req);
  REQUIRE(st(r1.status) == "complete");
  CHECK(r1.consumed == first.size());
  CHECK(req.path == "/one");
  CHECK(req.keep_alive);

  parser.reset();
  CHECK_FALSE(parser.in_progress());
  in.remove_prefix(r1.consumed);
  ParseResult r2 = parser.parse(in, req);
  REQUIRE(st(r2.status) == "complete");
  CHECK(r2.consumed == second.size());
  CHECK(req.method == Method::head);
  CHECK(req.path == "/two");
  CHECK(req.query == "x");
  CHECK_FALSE(req.keep_alive);

  parser.reset();
  in.remove_prefix(r2.consumed);
  CHECK(in == third);
  ParseResult r3 = parser.parse(in, req);
  CHECK(st(r3.status) == "need_more");
  CHECK(parser.in_progress());
}

TEST_CASE("http parser: in_progress is false while only empty lines have arrived") {
  RequestParser parser;
  Request req;
  GuardedBuffer buf(64);
  CHECK(st(parser.parse(buf.place(""), req).status) == "need_more");
  CHECK_FALSE(parser.in_progress());
  CHECK(st(parser.parse(buf.place("\r\n\r\n"), req).status) == "need_more");
  CHECK_FALSE(parser.in_progress());
  CHECK(st(parser.parse(buf.place("\r\n\r\nG"), req).status) == "need_more");
  CHECK(parser.in_progress());
}

TEST_CASE("http parser: Request::find is case-insensitive and returns the first match") {
  const std::string raw =
      "GET / HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nAccept: a\r\naccept: b\r\n"
      "X-Empty:\r\n\r\n";
  GuardedBuffer buf(raw.size());
  RequestParser parser;
  Request req;
  REQUIRE(st(parser.parse(buf.place(raw), req).status) == "complete");
  REQUIRE(req.header_count == 5);
  for (std::string_view name : {"content-type", "CONTENT-TYPE", "Content-Type", "cOnTeNt-TyPe"}) {
    CAPTURE(name);
    const Header* h = req.find(name);
    REQUIRE(h != nullptr);
    CHECK(h->name == "Content-Type");
    CHECK(h->value == "text/plain");
  }
  const Header* accept = req.find("ACCEPT");
  REQUIRE(accept != nullptr);
  CHECK(accept->value == "a");
  CHECK(accept == &req.headers[2]);
  const Header* empty = req.find("x-empty");
  REQUIRE(empty != nullptr);
  CHECK(empty->value.empty());
  CHECK(req.find("X-Missing") == nullptr);
  CHECK(req.find("Content-Typ") == nullptr);
  CHECK(req.find("Content-Type2") == nullptr);
  CHECK(req.find("") == nullptr);
  CHECK(netloop::http::iequals("Keep-Alive", "kEEP-aLIVE"));
  CHECK_FALSE(netloop::http::iequals("keep-alive", "keep-alivE "));
  CHECK_FALSE(netloop::http::iequals("[", "{"));  // not a blind |0x20
}

TEST_CASE("http parser: the fields the responder acts on are noted with their count") {
  const std::string raw =
      "GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\nrange: bytes=0-1\r\n"
      "IF-MODIFIED-SINCE: Sun, 06 Nov 1994 08:49:37 GMT\r\nAccept-Encoding: gzip\r\n"
      "if-none-match: \"b\"\r\nIf-Match: *\r\nIf-Range: \"c\"\r\n"
      "If-Unmodified-Since: x\r\nAccept-Encodings: no\r\nIf-Matches: no\r\n\r\n";
  GuardedBuffer buf(raw.size());
  RequestParser parser;
  Request req;
  REQUIRE(st(parser.parse(buf.place(raw), req).status) == "complete");
  CHECK(req.if_none_match.count == 2);
  CHECK(req.if_none_match.value == "\"a\"");
  std::string all;
  req.for_each_value("If-None-Match", [&all](std::string_view v) { all += std::string(v) + ";"; });
  CHECK(all == "\"a\";\"b\";");
  CHECK(req.range.count == 1);
  CHECK(req.range.value == "bytes=0-1");
  CHECK(req.if_modified_since.value == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(req.accept_encoding.count == 1);
  CHECK(req.accept_encoding.value == "gzip");
  CHECK(req.if_match.value == "*");
  CHECK(req.if_range.value == "\"c\"");
  CHECK(req.if_unmodified_since.value == "x");
  // The next request on the same Request object starts from nothing.
  parser.reset();
  const std::string plain = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  GuardedBuffer buf2(plain.size());
  REQUIRE(st(parser.parse(buf2.place(plain), req).status) == "complete");
  for (const netloop::http::FieldRef* f : {&req.if_match, &req.if_none_match, &req.if_modified_since,
                            &req.if_unmodified_since, &req.if_range, &req.range, &req.accept_encoding})
    CHECK_FALSE(f->present());
}

TEST_CASE("http parser: method names round-trip through to_string") {
  for (Method m : {Method::get, Method::head, Method::post, Method::put, Method::delete_,
                   Method::connect, Method::options, Method::trace, Method::patch}) {
    CAPTURE(mt(m));
    std::string raw = std::string(netloop::http::to_string(m)) + " / HTTP/1.1\r\nHost: h\r\n\r\n";
    GuardedBuffer buf(raw.size());
    RequestParser parser;
    Request req;
    REQUIRE(st(parser.parse(buf.place(raw), req).status) == "complete");
    CHECK(mt(req.method) == mt(m));
  }
}
