// Unit tests for Accept-Encoding (protocols/http/accept_encoding.cpp): a table of field
// values and available codings. Every value is copied to a heap block of exactly its size,
// so under ASan a read past its end is reported.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/accept_encoding.hpp"

using netloop::http::choose_coding;
using netloop::http::Coding;
using netloop::http::coding_bit;
using netloop::http::coding_name;
using netloop::http::coding_suffix;

namespace {

std::string_view name(Coding c) {
  switch (c) {
    case Coding::identity: return "identity";
    case Coding::br: return "br";
    case Coding::gzip: return "gzip";
  }
  return "Coding(?)";
}

Coding choose_exact(std::string_view value, bool present, uint8_t available) {
  std::vector<char> bytes(value.begin(), value.end());
  return choose_coding(std::string_view(bytes.data(), bytes.size()), present, available);
}

constexpr uint8_t kBr = coding_bit(Coding::br);
constexpr uint8_t kGzip = coding_bit(Coding::gzip);
constexpr uint8_t kBoth = kBr | kGzip;
constexpr uint8_t kNone = 0;

struct Row {
  std::string value;
  uint8_t available;
  Coding expect;
  bool present = true;
};

const Row kRows[] = {
    // No field, or an empty one: identity.
    {"gzip, br", kBoth, Coding::identity, false},
    {"", kBoth, Coding::identity, false},
    {"", kBoth, Coding::identity},
    {" ", kBoth, Coding::identity},
    // One coding.
    {"gzip", kBoth, Coding::gzip},
    {"br", kBoth, Coding::br},
    {"gzip", kBr, Coding::identity},
    {"br", kGzip, Coding::identity},
    {"gzip", kNone, Coding::identity},
    {"gzip", kGzip | coding_bit(Coding::identity), Coding::gzip},
    // Ties go to br, then gzip, then identity.
    {"gzip, br", kBoth, Coding::br},
    {"br, gzip", kBoth, Coding::br},
    {"gzip, deflate, br, zstd", kBoth, Coding::br},
    {"gzip, deflate, br, zstd", kGzip, Coding::gzip},
    {"gzip;q=0.5, br;q=0.5", kBoth, Coding::br},
    {"gzip;q=0.5, br;q=0.500", kBoth, Coding::br},
    {"identity;q=0.5, gzip;q=0.5", kBoth, Coding::gzip},
    {"identity, gzip", kBoth, Coding::gzip},
    {"identity, br", kGzip, Coding::identity},
    // The highest weight wins.
    {"br;q=0.5, gzip", kBoth, Coding::gzip},
    {"gzip;q=0.5, br;q=0.4", kBoth, Coding::gzip},
    {"br;q=0.999, gzip;q=0.998", kBoth, Coding::br},
    {"br;q=0.001, gzip;q=0.002", kBoth, Coding::gzip},
    {"br;q=0.001", kBoth, Coding::br},  // beats identity, which was not named
    {"identity, gzip;q=0.5", kBoth, Coding::identity},
    {"identity;q=0.4, gzip;q=0.5", kBoth, Coding::gzip},
    {"identity;q=0.6, gzip;q=0.5", kBoth, Coding::identity},
    {"br;q=1, gzip;q=1.0, identity;q=1.000", kBoth, Coding::br},
    // q=0 refuses.
    {"gzip;q=0", kBoth, Coding::identity},
    {"gzip;q=0.000, br", kBoth, Coding::br},
    {"br;q=0, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q=0.", kBoth, Coding::identity},
    // Codings not named are refused unless "*" names them.
    {"identity", kBoth, Coding::identity},
    {"deflate", kBoth, Coding::identity},
    {"*", kBoth, Coding::br},
    {"*", kGzip, Coding::gzip},
    {"*", kNone, Coding::identity},
    {"*;q=0.5, br;q=0.4", kBoth, Coding::gzip},
    {"br;q=0.5, *;q=0.9", kBoth, Coding::gzip},
    {"*;q=0.5, br;q=0", kBoth, Coding::gzip},
    {"*;q=0.5, br;q=0, gzip;q=0", kBoth, Coding::identity},  // identity via "*"
    {"*;q=0.5, identity;q=0.8", kBoth, Coding::identity},
    {"*;q=0.9, identity;q=0.8", kBoth, Coding::br},
    {"*;q=0.5, gzip;q=0.3", kGzip, Coding::identity},  // identity takes "*"'s 0.5
    // identity refused: explicitly, or by "*;q=0" without naming it. With nothing else
    // acceptable the response is still identity.
    {"identity;q=0", kBoth, Coding::identity},
    {"identity;q=0, gzip", kBoth, Coding::gzip},
    {"identity;q=0, gzip;q=0.001", kBr, Coding::identity},
    {"*;q=0", kBoth, Coding::identity},
    {"*;q=0, gzip", kBoth, Coding::gzip},
    {"*;q=0, identity", kBoth, Coding::identity},
    {"*;q=0, identity;q=0.1, br;q=0.2", kBoth, Coding::br},
    {"*;q=0, identity;q=0.3, br;q=0.2", kBoth, Coding::identity},
    // Case, x-gzip.
    {"GZIP", kBoth, Coding::gzip},
    {"Br", kBoth, Coding::br},
    {"x-gzip", kBoth, Coding::gzip},
    {"X-GZip", kBoth, Coding::gzip},
    {"x-gzip;q=0.5, br;q=0.4", kBoth, Coding::gzip},
    {"gzip;Q=0.5, br;q=0.4", kBoth, Coding::gzip},
    {"IDENTITY;q=0, GZIP;q=0", kBoth, Coding::identity},
    {"identity;q=0, BR", kBoth, Coding::br},
    {"x-br", kBoth, Coding::identity},
    {"gzip2", kBoth, Coding::identity},
    {"gzi", kBoth, Coding::identity},
    // The first mention of a coding counts.
    {"gzip;q=0, gzip", kBoth, Coding::identity},
    {"gzip, gzip;q=0", kBoth, Coding::gzip},
    {"x-gzip;q=0, gzip", kBoth, Coding::identity},
    {"*;q=0, *", kBoth, Coding::identity},
    {"br;q=0.1, gzip;q=0.2, br;q=0.9", kBoth, Coding::gzip},
    // OWS and empty elements.
    {"gzip ; q=0.5 , br ; q=0.6", kBoth, Coding::br},
    {"gzip;\tq=0.5,\tbr;q=0.4", kBoth, Coding::gzip},
    {" , ,gzip, ,", kBoth, Coding::gzip},
    {",,,br", kBoth, Coding::br},
    {"br,,,", kBoth, Coding::br},
    {",", kBoth, Coding::identity},
    // Malformed elements are skipped, the rest still counts.
    {"br;q=1.001, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q=0.1234, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q=2, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q=.5, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q=, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;x=1, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q=0.5;x=1, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q=-1, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q=1e0, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q=01, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q= 1, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q =1, gzip;q=0.1", kBoth, Coding::gzip},
    {"br q=1, gzip;q=0.1", kBoth, Coding::gzip},
    {"b r, gzip;q=0.1", kBoth, Coding::gzip},
    {"\"br\", gzip;q=0.1", kBoth, Coding::gzip},
    {";q=1, gzip;q=0.1", kBoth, Coding::gzip},
    {"br\x01, gzip;q=0.1", kBoth, Coding::gzip},
    {"br;q=1.0000, gzip;q=0.1", kBoth, Coding::gzip},
    {"gzip;q=bad, gzip;q=0", kBoth, Coding::identity},  // the first well-formed mention
    {"identity;q=x", kBoth, Coding::identity},
    {"*;q=1.5", kBoth, Coding::identity},
    // Valid weights at the edges of the grammar.
    {"br;q=1., gzip;q=0.9", kBoth, Coding::br},
    {"br;q=1.0, gzip;q=0.9", kBoth, Coding::br},
    {"br;q=1.00, gzip;q=0.9", kBoth, Coding::br},
    {"br;q=0.0, gzip;q=0.9", kBoth, Coding::gzip},
    {"br;q=0.9, gzip;q=0.90", kBoth, Coding::br},
};

}  // namespace

TEST_CASE("accept-encoding: choose_coding table") {
  for (const Row& row : kRows) {
    CAPTURE(row.value);
    CAPTURE(int(row.available));
    CAPTURE(row.present);
    CHECK(name(choose_exact(row.value, row.present, row.available)) == name(row.expect));
  }
}

TEST_CASE("accept-encoding: the result is available or identity, for every availability") {
  for (const Row& row : kRows) {
    for (unsigned available = 0; available < 8; ++available) {
      CAPTURE(row.value);
      CAPTURE(available);
      Coding c = choose_exact(row.value, row.present, uint8_t(available));
      CHECK((c == Coding::identity || (available & coding_bit(c)) != 0));
    }
  }
}

TEST_CASE("accept-encoding: every prefix of a value is read without reading past it") {
  const std::string full = "gzip;q=0.8, br ;\tQ=0.9, *;q=0";
  for (size_t n = 0; n <= full.size(); ++n) {
    CAPTURE(n);
    Coding c = choose_exact(std::string_view(full).substr(0, n), true, kBoth);
    if (n == full.size()) CHECK(name(c) == "br");
  }
}

TEST_CASE("accept-encoding: coding names and file suffixes") {
  CHECK(coding_name(Coding::identity) == "");
  CHECK(coding_name(Coding::br) == "br");
  CHECK(coding_name(Coding::gzip) == "gzip");
  CHECK(coding_suffix(Coding::identity) == "");
  CHECK(coding_suffix(Coding::br) == ".br");
  CHECK(coding_suffix(Coding::gzip) == ".gz");
  CHECK(coding_bit(Coding::identity) == 1);
  CHECK(coding_bit(Coding::br) == 2);
  CHECK(coding_bit(Coding::gzip) == 4);
}
