// libFuzzer harness for the HTTP request parser (protocols/http/request_parser.cpp),
// normalize_path (protocols/http/request_path.cpp) and the field parsers of the responder
// (byte_range.cpp, accept_encoding.cpp, conditional.cpp, http_date.cpp). Any broken
// invariant is a trap, so the fuzzer reports it as a crash together with the input.
//
// The input is copied into a heap buffer of exactly its size, so under ASan a read past the
// end is reported. Then:
// - it is parsed in one call, with the default limits and with small ones;
// - it is fed in two parts (split at a point taken from the first byte) through one parser
//   object, which must end in the same status (and for a complete head, the same length);
// - after a complete head, the rest is parsed as pipelined requests until one is not
//   complete;
// - every path the parser returns, and the raw input itself, go through normalize_path;
// - the input, whole and line by line, goes through parse_range (at several lengths),
//   choose_coding, etag_list_contains and parse_http_date, and its lines become the
//   conditional fields of a Request for evaluate_preconditions and if_range_allows; so do
//   the fields of every request head the parser completes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/accept_encoding.hpp"
#include "http/byte_range.hpp"
#include "http/conditional.hpp"
#include "http/http_date.hpp"
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

// parse_range's promises for `value` against `length`: satisfiable ranges sorted,
// disjoint and not adjacent (merged), inside the representation, at most kMaxRanges of
// them, together no more than the whole; no ranges otherwise.
void check_range(std::string_view value, uint64_t length) {
  RangeSet set = parse_range(value, length);
  switch (set.kind) {
    case RangeSet::Kind::ignore:
    case RangeSet::Kind::unsatisfiable:
      FUZZ_REQUIRE(set.count == 0);
      return;
    case RangeSet::Kind::satisfiable:
      break;
    default:
      FUZZ_REQUIRE(false);
  }
  FUZZ_REQUIRE(set.count >= 1 && set.count <= kMaxRanges);
  FUZZ_REQUIRE(length > 0);
  uint64_t total = 0;
  for (size_t i = 0; i < set.count; ++i) {
    const ByteRange& r = set.ranges[i];
    FUZZ_REQUIRE(r.first <= r.last && r.last < length);
    if (i > 0) FUZZ_REQUIRE(r.first > set.ranges[i - 1].last + 1);
    FUZZ_REQUIRE(r.length() <= length - total);  // no overflow: checked before adding
    total += r.length();
  }
  FUZZ_REQUIRE(total <= length);
}

void check_ranges(std::string_view value, std::string_view in) {
  uint64_t from_input = 0;  // a length the input picks, so the fuzzer can reach any
  for (size_t i = 0; i < 8 && i < in.size(); ++i)
    from_input = from_input << 8 | static_cast<unsigned char>(in[in.size() - 1 - i]);
  for (uint64_t length : {uint64_t(0), uint64_t(1), uint64_t(100), uint64_t(value.size()),
                          std::numeric_limits<uint64_t>::max(), from_input})
    check_range(value, length);
}

// The coding chosen is one on disk, or identity; without the field, identity.
void check_coding(std::string_view value) {
  for (uint8_t available = 0; available < 8; ++available) {
    Coding c = choose_coding(value, true, available);
    FUZZ_REQUIRE(c == Coding::identity || c == Coding::br || c == Coding::gzip);
    FUZZ_REQUIRE(c == Coding::identity || (available & coding_bit(c)) != 0);
    FUZZ_REQUIRE(coding_name(c).empty() == (c == Coding::identity));
    FUZZ_REQUIRE(coding_suffix(c).empty() == (c == Coding::identity));
    FUZZ_REQUIRE(choose_coding(value, false, available) == Coding::identity);
  }
}

// A strong match is a weak one; "*" matches anything.
void check_etag_list(std::string_view list, std::string_view etag) {
  bool strong = etag_list_contains(list, etag, false);
  bool weak = etag_list_contains(list, etag, true);
  FUZZ_REQUIRE(!strong || weak);
  if (list == "*") FUZZ_REQUIRE(strong);
  // A list that is one well-formed strong tag contains itself.
  if (list.size() >= 2 && list.front() == '"' && list.back() == '"') {
    bool etagc = true;
    for (char c : list.substr(1, list.size() - 2)) {
      auto u = static_cast<unsigned char>(c);
      etagc &= u == 0x21 || (u >= 0x23 && u != 0x7f);
    }
    if (etagc) FUZZ_REQUIRE(etag_list_contains(list, list, false));
  }
}

// A date that parses formats as an IMF-fixdate that parses to the same second.
std::optional<std::time_t> check_date(std::string_view s) {
  std::optional<std::time_t> t = parse_http_date(s);
  if (!t) return t;
  FUZZ_REQUIRE(*t >= -62167219200 && *t <= 253402300799);  // years 0000 to 9999
  char buf[kHttpDateSize];
  format_http_date(*t, buf);
  std::optional<std::time_t> again = parse_http_date(std::string_view(buf, kHttpDateSize));
  FUZZ_REQUIRE(again && *again == *t);
  return t;
}

// What evaluate_preconditions and if_range_allows may answer for `req`.
void check_conditional(const Request& req, const Validators& v) {
  Precondition p = evaluate_preconditions(req, v);
  bool get_or_head = req.method == Method::get || req.method == Method::head;
  switch (p) {
    case Precondition::proceed:
      break;
    case Precondition::not_modified:  // only a condition that can say 304
      FUZZ_REQUIRE(get_or_head);
      FUZZ_REQUIRE(req.if_none_match.present() || req.if_modified_since.count == 1);
      break;
    case Precondition::failed:
      FUZZ_REQUIRE(req.if_match.present() || req.if_unmodified_since.count == 1 ||
                   (!get_or_head && req.if_none_match.present()));
      break;
    default:
      FUZZ_REQUIRE(false);
  }
  bool conditional = req.if_match.present() || req.if_none_match.present() ||
                     req.if_modified_since.present() || req.if_unmodified_since.present();
  if (!conditional) FUZZ_REQUIRE(p == Precondition::proceed);
  if (req.if_match.present() && req.if_match.count == 1 && req.if_match.value == "*")
    FUZZ_REQUIRE(p != Precondition::failed || req.if_none_match.present());

  bool allows = if_range_allows(req, v);
  if (!req.if_range.present()) FUZZ_REQUIRE(allows);
  if (allows && req.if_range.present()) FUZZ_REQUIRE(req.if_range.count == 1);
}

// Every line of `in` as a field of a hand-built Request: the first byte picks the field,
// the rest is its value, pointing into `in`. Validators come from the input too.
void fuzz_fields(std::string_view in) {
  static constexpr std::string_view kNames[] = {"if-match", "if-none-match", "if-modified-since",
                                                "if-unmodified-since", "if-range"};
  static Request req;  // large: kept, as a server keeps one per loop
  req = Request{};
  req.method = in.empty() || (in[0] & 1) ? Method::get : (in[0] & 2 ? Method::head : Method::post);
  std::string_view lines = in;
  std::string_view first_line;
  std::optional<std::time_t> first_date;
  bool first = true;
  while (!lines.empty() && req.header_count < kMaxHeaders) {
    size_t nl = lines.find('\n');
    std::string_view line = lines.substr(0, nl);
    lines = nl == std::string_view::npos ? std::string_view{} : lines.substr(nl + 1);
    std::optional<std::time_t> d = check_date(line);
    check_coding(line);
    check_ranges(line, in);
    if (first) {
      first_line = line;
      first_date = d;
      first = false;
    } else {
      check_etag_list(line, first_line);
    }
    if (line.empty()) continue;
    size_t which = static_cast<unsigned char>(line[0]) % 8;
    if (which >= 5) continue;  // not a conditional field
    std::string_view value = line.substr(1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    req.headers[req.header_count++] = {kNames[which], value};
    FieldRef* refs[] = {&req.if_match, &req.if_none_match, &req.if_modified_since,
                        &req.if_unmodified_since, &req.if_range};
    FieldRef& f = *refs[which];
    if (f.count == 0) f.value = value;
    if (f.count < 255) ++f.count;
  }
  std::time_t lm = first_date ? *first_date : 784111777;
  check_conditional(req, Validators{"\"v1\"", lm});
  check_conditional(req, Validators{first_line, lm + 1});
}

// The fields of a head the parser completed, as the responder will read them.
void check_request_fields(const Request& req, std::string_view in) {
  if (req.range.present()) check_ranges(req.range.value, in);
  if (req.accept_encoding.present()) check_coding(req.accept_encoding.value);
  for (const FieldRef* f : {&req.if_modified_since, &req.if_unmodified_since, &req.if_range})
    if (f->present()) check_date(f->value);
  check_conditional(req, Validators{"\"v1\"", 784111777});
}

// One-shot, two-part and pipelined parsing of `in` with `limits`.
void fuzz_parser(std::string_view in, const ParserLimits& limits, size_t split) {
  Request req;
  RequestParser one_shot(limits);
  ParseResult whole = one_shot.parse(in, req);
  check_result(whole, req, in, limits);
  if (whole.status == ParseStatus::complete) check_request_fields(req, in);

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

  // The whole input as each field value, then each of its lines (fuzz_fields): values
  // inside a request are reached both ways and through the parser's own fields.
  check_ranges(in, in);
  check_coding(in);
  check_date(in);
  fuzz_fields(in);
  return 0;
}
