// libFuzzer harness for the PROXY protocol parser (lib/src/proxy_protocol.cpp). Any broken
// invariant is a trap, so the fuzzer reports it as a crash together with the input.
//
// Every parse gets its bytes in a heap buffer of exactly their size, so under ASan a read
// past the end is reported. The input is parsed with the default cap and with a small one
// (taken from its last byte), and then:
// - done: 0 < length <= size, within the version's limits; the header alone gives the same
//   result, and every proper prefix of it is need_more (all of them for short headers);
// - need_more: every proper prefix is need_more too, and the bytes fit within the limits;
// - invalid: a reason is given and the Header is left empty;
// - for short inputs (default cap), the input grown one byte at a time through one Header
//   gives need_more ... then the same answer (same header, or same reason) for every
//   longer prefix: a byte never changes what earlier bytes decided;
// - crc32c over the input in two runs equals one run.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>

#include "netloop/proxy_protocol.hpp"

using namespace netloop::proxy_protocol;

namespace {

// Names the broken invariant before trapping (the trap alone has no line in the report).
#define FUZZ_REQUIRE(cond)                                                       \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      __builtin_trap();                                                          \
    }                                                                            \
  } while (0)

// Up to this size every prefix is checked; past it only a few (the cost is quadratic).
constexpr size_t kAllPrefixes = 128;

bool same_endpoint(const Endpoint& a, const Endpoint& b) {
  return a.address == b.address && a.port == b.port && a.path == b.path;
}

bool same_ssl(const std::optional<SslInfo>& a, const std::optional<SslInfo>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return a->client == b->client && a->verify == b->verify && a->version == b->version &&
         a->common_name == b->common_name && a->cipher == b->cipher &&
         a->signature_algorithm == b->signature_algorithm && a->key_algorithm == b->key_algorithm;
}

bool same(const Header& a, const Header& b) {
  if (a.other_tlvs.size() != b.other_tlvs.size()) return false;
  for (size_t i = 0; i < a.other_tlvs.size(); ++i)
    if (a.other_tlvs[i].type != b.other_tlvs[i].type ||
        a.other_tlvs[i].value != b.other_tlvs[i].value)
      return false;
  return a.version == b.version && a.command == b.command && a.family == b.family &&
         a.transport == b.transport && same_endpoint(a.source, b.source) &&
         same_endpoint(a.destination, b.destination) && a.alpn == b.alpn &&
         a.authority == b.authority && a.unique_id == b.unique_id && a.netns == b.netns &&
         same_ssl(a.ssl, b.ssl) && a.crc32c_checked == b.crc32c_checked && a.length == b.length;
}

bool is_empty(const Header& h) { return same(h, Header{}); }

// A Header full of leftovers: parse() must not keep any of them.
Header junk() {
  Header h;
  h.version = 7;
  h.alpn = "junk";
  h.ssl.emplace();
  h.crc32c_checked = true;
  h.other_tlvs.push_back({0xE1, "junk"});
  h.length = 3;
  return h;
}

// Parses the first n bytes from a heap copy of exactly n bytes.
ParseResult parse_prefix(const uint8_t* data, size_t n, Header& out, const ParseOptions& options) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[n == 0 ? 1 : n]);
  if (n > 0) std::memcpy(copy.get(), data, n);
  return parse(std::span<const uint8_t>(copy.get(), n), out, options);
}

void check_result(const uint8_t* data, size_t size, const ParseOptions& options) {
  Header out = junk();
  ParseResult r = parse_prefix(data, size, out, options);
  switch (r.status) {
    case Status::invalid:
      FUZZ_REQUIRE(!r.error.empty());
      FUZZ_REQUIRE(is_empty(out));
      return;
    case Status::need_more: {
      FUZZ_REQUIRE(r.error.empty());
      FUZZ_REQUIRE(is_empty(out));
      if (size > 0 && data[0] == 'P') FUZZ_REQUIRE(size < kV1MaxLength);
      if (size > 0 && data[0] != 'P') FUZZ_REQUIRE(size < options.v2_max_length || size < 16);
      size_t step = size <= kAllPrefixes ? 1 : size / 16 + 1;
      for (size_t n = 0; n < size; n += step) {
        Header h;
        FUZZ_REQUIRE(parse_prefix(data, n, h, options).status == Status::need_more);
      }
      return;
    }
    case Status::done:
      break;
  }
  FUZZ_REQUIRE(r.error.empty());
  FUZZ_REQUIRE(out.length > 0 && out.length <= size);
  if (out.version == 1) {
    FUZZ_REQUIRE(out.length <= kV1MaxLength);
    FUZZ_REQUIRE(data[out.length - 2] == '\r' && data[out.length - 1] == '\n');
  } else {
    FUZZ_REQUIRE(out.version == 2);
    FUZZ_REQUIRE(out.length >= kV2FixedLength && out.length <= options.v2_max_length);
    FUZZ_REQUIRE(out.unique_id.size() <= 128);
  }
  if (out.carries_client_address())
    FUZZ_REQUIRE(out.family == Family::inet || out.family == Family::inet6);
  // The header alone gives the same answer; bytes after it were not looked at.
  Header alone = junk();
  FUZZ_REQUIRE(parse_prefix(data, out.length, alone, options).status == Status::done);
  FUZZ_REQUIRE(same(alone, out));
  size_t step = out.length <= kAllPrefixes ? 1 : out.length / 16 + 1;
  for (size_t n = 0; n < out.length; n += step) {
    Header h = junk();
    FUZZ_REQUIRE(parse_prefix(data, n, h, options).status == Status::need_more);
    FUZZ_REQUIRE(is_empty(h));
  }
  Header h;
  FUZZ_REQUIRE(parse_prefix(data, out.length - 1, h, options).status == Status::need_more);
}

// Grows the input one byte at a time through one Header: once an answer is given, every
// longer prefix gives the same one.
void check_growth(const uint8_t* data, size_t size, const ParseOptions& options) {
  Header out = junk();
  Header first;
  ParseResult decided{};
  bool have_decision = false;
  for (size_t n = 0; n <= size; ++n) {
    ParseResult r = parse_prefix(data, n, out, options);
    if (!have_decision) {
      if (r.status == Status::need_more) continue;
      have_decision = true;
      decided = r;
      first = out;
      if (r.status == Status::done) FUZZ_REQUIRE(out.length == n);
      continue;
    }
    FUZZ_REQUIRE(r.status == decided.status);
    FUZZ_REQUIRE(r.error == decided.error);
    FUZZ_REQUIRE(same(out, first));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ParseOptions defaults;
  ParseOptions small;
  small.v2_max_length = size > 0 ? data[size - 1] : 0;  // also below the 16 fixed bytes
  check_result(data, size, defaults);
  check_result(data, size, small);
  if (size <= kAllPrefixes) check_growth(data, size, defaults);

  std::span<const uint8_t> all(data, size);
  size_t cut = size > 0 ? data[0] % (size + 1) : 0;
  FUZZ_REQUIRE(crc32c(all.subspan(cut), crc32c(all.first(cut))) == crc32c(all));
  return 0;
}
