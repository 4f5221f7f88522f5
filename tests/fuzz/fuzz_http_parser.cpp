// libFuzzer harness for the HTTP request parser (protocols/http/request_parser.cpp) and
// normalize_path (protocols/http/request_path.cpp). Any broken invariant is a trap, so the
// fuzzer reports it as a crash together with the input.
//
// The input is copied into a heap buffer of exactly its size, so under ASan a read past the
// end is reported. Then:
// - it is parsed in one call, with the default limits and with small ones;
// - it is fed in two parts (split at a point taken from the first byte) through one parser
//   object, which must end in the same status (and for a complete head, the same length);
// - after a complete head, the rest is parsed as pipelined requests until one is not
//   complete;
// - every path the parser returns, and the raw input itself, go through normalize_path.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "http/request_parser.hpp"
#include "http/request_path.hpp"

using namespace netloop::http;

namespace {

#define FUZZ_REQUIRE(cond)         \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// True when `v` lies inside `in` (an empty view without data counts as inside).
bool inside(std::string_view v, std::string_view in) {
  if (v.empty() && v.data() == nullptr) return true;
  auto p = reinterpret_cast<uintptr_t>(v.data());
  auto b = reinterpret_cast<uintptr_t>(in.data());
  return p >= b && p + v.size() <= b + in.size();
}

// The same bytes at the same place (two empty views are the same whatever they point at).
bool same_view(std::string_view a, std::string_view b) {
  return a.size() == b.size() && (a.empty() || a.data() == b.data());
}

// normalize_path's promises: on success no leading '/', no "//", no empty, "." or ".."
// segment, no NUL; otherwise a 400 with a reason.
void check_path(std::string_view raw) {
  static std::string out;  // reused, as a server would
  PathResult r = normalize_path(raw, out);
  if (r.http_status != 0) {
    FUZZ_REQUIRE(r.http_status == 400);
    FUZZ_REQUIRE(!r.reason.empty());
    return;
  }
  FUZZ_REQUIRE(!raw.empty() && raw.front() == '/');
  FUZZ_REQUIRE(out.find('\0') == std::string::npos);
  // A plain path is looked up in the file cache as itself less the leading '/'.
  if (is_plain_path(raw) && raw.size() > 1)
    FUZZ_REQUIRE(out + (r.directory ? "/" : "") == raw.substr(1));
  if (out.empty()) {
    FUZZ_REQUIRE(r.directory);
    return;
  }
  FUZZ_REQUIRE(out.front() != '/');
  FUZZ_REQUIRE(out.back() != '/');
  FUZZ_REQUIRE(out.find("//") == std::string::npos);
  std::string_view rest = out;
  for (;;) {
    size_t slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    FUZZ_REQUIRE(!seg.empty() && seg != "." && seg != "..");
    for (char c : seg) FUZZ_REQUIRE(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  FUZZ_REQUIRE(out.size() <= raw.size());
}

// The invariants of one parse of `in`.
void check_result(const ParseResult& res, const Request& req, std::string_view in,
                  const ParserLimits& limits) {
  FUZZ_REQUIRE(res.consumed <= in.size());
  switch (res.status) {
    case ParseStatus::need_more:
      FUZZ_REQUIRE(res.http_status == 0);
      FUZZ_REQUIRE(res.consumed == 0);
      return;
    case ParseStatus::error:
      FUZZ_REQUIRE(res.http_status == 400 || res.http_status == 414 || res.http_status == 431 ||
                   res.http_status == 505);
      FUZZ_REQUIRE(!res.reason.empty());
      return;
    case ParseStatus::complete:
      break;
    default:
      FUZZ_REQUIRE(false);
  }
  FUZZ_REQUIRE(res.http_status == 0);
  FUZZ_REQUIRE(res.consumed >= 4);
  FUZZ_REQUIRE(in.substr(res.consumed - 4, 4) == "\r\n\r\n");
  FUZZ_REQUIRE(!req.method_name.empty());
  FUZZ_REQUIRE(req.version_minor <= 1);
  FUZZ_REQUIRE(req.header_count <= limits.max_headers && req.header_count <= kMaxHeaders);
  FUZZ_REQUIRE(!req.target.empty());
  FUZZ_REQUIRE(inside(req.method_name, in));
  FUZZ_REQUIRE(inside(req.target, in));
  FUZZ_REQUIRE(req.path == "/" || inside(req.path, in));
  FUZZ_REQUIRE(inside(req.query, in));
  FUZZ_REQUIRE(inside(req.host, in));
  FUZZ_REQUIRE(req.has_host || req.host.empty());
  FUZZ_REQUIRE(req.version_minor == 0 || req.has_host);
  FUZZ_REQUIRE(!req.has_content_length || req.content_length < (uint64_t(1) << 62));
  if (req.target == "*") {
    FUZZ_REQUIRE(req.path.empty());
  } else {
    FUZZ_REQUIRE(!req.path.empty() && req.path.front() == '/');
    check_path(req.path);
  }
  for (size_t i = 0; i < req.header_count; ++i) {
    const Header& h = req.headers[i];
    FUZZ_REQUIRE(!h.name.empty());
    FUZZ_REQUIRE(inside(h.name, in));
    FUZZ_REQUIRE(inside(h.value, in));
    FUZZ_REQUIRE(h.value.find_first_of("\r\n") == std::string_view::npos);
    FUZZ_REQUIRE(req.find(h.name) != nullptr);
  }
}

ParserLimits small_limits() {
  ParserLimits l;
  l.max_request_line = 64;
  l.max_head_bytes = 256;
  l.max_headers = 8;
  l.max_empty_lines = 2;
  return l;
}

// One-shot, two-part and pipelined parsing of `in` with `limits`.
void fuzz_parser(std::string_view in, const ParserLimits& limits, size_t split) {
  Request req;
  RequestParser one_shot(limits);
  ParseResult whole = one_shot.parse(in, req);
  check_result(whole, req, in, limits);

  // The same bytes in two parts, through one parser object: at `split`, and after the
  // first byte, which always sends the head through the line scanner (a first call that
  // completes, or split 0, would take the one-pass path again).
  for (size_t at : {split, size_t(1)}) {
    if (at > in.size()) continue;
    std::string_view first = in.substr(0, at);
    Request req2;
    RequestParser parser(limits);
    ParseResult r = parser.parse(first, req2);
    check_result(r, req2, first, limits);
    if (r.status == ParseStatus::need_more) {
      r = parser.parse(in, req2);
      check_result(r, req2, in, limits);
    }
    FUZZ_REQUIRE(r.status == whole.status);
    if (whole.status == ParseStatus::complete) {
      // The one-pass fast path (whole) and the line scanner (two parts) agree on every
      // part, down to where the views point.
      FUZZ_REQUIRE(r.consumed == whole.consumed);
      FUZZ_REQUIRE(same_view(req2.method_name, req.method_name) && req2.method == req.method);
      FUZZ_REQUIRE(same_view(req2.target, req.target) && same_view(req2.path, req.path));
      FUZZ_REQUIRE(same_view(req2.query, req.query) && same_view(req2.host, req.host));
      FUZZ_REQUIRE(req2.version_minor == req.version_minor && req2.has_host == req.has_host);
      FUZZ_REQUIRE(req2.keep_alive == req.keep_alive);
      FUZZ_REQUIRE(req2.has_content_length == req.has_content_length &&
                   req2.content_length == req.content_length);
      FUZZ_REQUIRE(req2.header_count == req.header_count);
      for (size_t i = 0; i < req.header_count; ++i)
        FUZZ_REQUIRE(same_view(req2.headers[i].name, req.headers[i].name) &&
                     same_view(req2.headers[i].value, req.headers[i].value));
    }
  }

  // Pipelined requests after a complete head.
  if (whole.status != ParseStatus::complete) return;
  std::string_view rest = in.substr(whole.consumed);
  RequestParser parser(limits);
  for (;;) {
    parser.reset();
    ParseResult r = parser.parse(rest, req);
    check_result(r, req, rest, limits);
    if (r.status != ParseStatus::complete) break;
    rest.remove_prefix(r.consumed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exactly-sized copy: ASan reports any read past its end.
  std::unique_ptr<char[]> copy(new char[size]);
  if (size != 0) std::memcpy(copy.get(), data, size);
  std::string_view in(copy.get(), size);
  size_t split = size == 0 ? 0 : size_t(data[0]) % (size + 1);

  fuzz_parser(in, ParserLimits{}, split);
  fuzz_parser(in, small_limits(), split);
  check_path(in);
  return 0;
}
