// choose_coding: the weights of Accept-Encoding, read once, applied to the codings on disk.
#include "http/accept_encoding.hpp"

#include "http/char_scan.hpp"
#include "http/request_parser.hpp"

namespace netloop::http {
namespace {

constexpr int kUnnamed = -1;
constexpr int kMalformed = -1;

// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
int parse_qvalue(std::string_view s) noexcept {
  if (s.empty() || s.size() > 5 || (s[0] != '0' && s[0] != '1')) return kMalformed;
  int whole = s[0] - '0';
  if (s.size() == 1) return whole * 1000;
  if (s[1] != '.') return kMalformed;
  int frac = 0, scale = 100;
  for (size_t i = 2; i < s.size(); ++i) {
    char c = s[i];
    if (c < '0' || c > '9' || (whole == 1 && c != '0')) return kMalformed;
    frac += (c - '0') * scale;
    scale /= 10;
  }
  return whole * 1000 + frac;
}

// One list element: coding [ OWS ";" OWS "q=" qvalue ], already trimmed. Returns the
// weight in thousandths (1000 without one) and the coding in `name`, or kMalformed.
int parse_element(std::string_view e, std::string_view& name) noexcept {
  const char* end = e.data() + e.size();
  const char* p = scan::skip_tchars(e.data(), end);
  name = std::string_view(e.data(), size_t(p - e.data()));
  if (name.empty()) return kMalformed;
  while (p < end && is_ows(*p)) ++p;
  if (p == end) return 1000;
  if (*p++ != ';') return kMalformed;
  while (p < end && is_ows(*p)) ++p;
  if (end - p < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=') return kMalformed;
  return parse_qvalue(std::string_view(p + 2, size_t(end - p - 2)));
}

}  // namespace

std::string_view coding_name(Coding c) noexcept {
  switch (c) {
    case Coding::br: return "br";
    case Coding::gzip: return "gzip";
    case Coding::identity: break;
  }
  return "";
}

std::string_view coding_suffix(Coding c) noexcept {
  switch (c) {
    case Coding::br: return ".br";
    case Coding::gzip: return ".gz";
    case Coding::identity: break;
  }
  return "";
}

Coding choose_coding(std::string_view accept_encoding, bool present, uint8_t available) noexcept {
  if (!present) return Coding::identity;
  // The weight each coding was first named with (thousandths), or kUnnamed; a later
  // mention of the same coding does not override the first.
  int q[3] = {kUnnamed, kUnnamed, kUnnamed};  // indexed by Coding
  int star = kUnnamed;
  std::string_view rest = accept_encoding;
  // Neither a token nor a qvalue holds a comma, so elements split at commas.
  for (;;) {
    size_t comma = rest.find(',');
    std::string_view element = trim_ows(rest.substr(0, comma));
    if (!element.empty()) {
      std::string_view name;
      int weight = parse_element(element, name);
      if (weight != kMalformed) {
        int* slot = nullptr;
        if (iequals(name, "br")) slot = &q[uint8_t(Coding::br)];
        else if (iequals(name, "gzip") || iequals(name, "x-gzip")) slot = &q[uint8_t(Coding::gzip)];
        else if (iequals(name, "identity")) slot = &q[uint8_t(Coding::identity)];
        else if (name == "*") slot = &star;
        if (slot && *slot == kUnnamed) *slot = weight;
      }
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }

  // Unnamed codings take the weight of "*", or are refused without one; identity unnamed
  // and without "*" is acceptable but least preferred (1/1000), so any coding the client
  // named acceptable beats it.
  auto weight_of = [&](Coding c) {
    int w = q[uint8_t(c)];
    if (w != kUnnamed) return w;
    if (star != kUnnamed) return star;
    return c == Coding::identity ? 1 : 0;
  };
  Coding best = Coding::identity;
  int best_q = 0;
  for (Coding c : {Coding::br, Coding::gzip, Coding::identity}) {  // the tie order
    if (c != Coding::identity && !(available & coding_bit(c))) continue;
    int w = weight_of(c);
    if (w > best_q) {
      best = c;
      best_q = w;
    }
  }
  return best;  // identity also when nothing is acceptable (§12.5.3: send it, not a 406)
}

}  // namespace netloop::http
