// Conditional requests: entity-tag lists, If-Range, and the precondition order of RFC 9110
// §13.2.2.
#include "http/conditional.hpp"

#include <optional>

#include "http/http_date.hpp"

namespace netloop::http {
namespace {

// etagc = %x21 / %x23-7E / obs-text: no space, no DQUOTE, no controls, no DEL.
bool is_etagc(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u == 0x21 || (u >= 0x23 && u != 0x7f);
}

struct EntityTag {
  std::string_view opaque;  // with its quotes
  bool weak = false;
};

// Reads [W/] DQUOTE *etagc DQUOTE at s[pos], moving pos past it. W/ is case-sensitive.
bool read_entity_tag(std::string_view s, size_t& pos, EntityTag& out) noexcept {
  size_t p = pos;
  out.weak = s.substr(p, 2) == "W/";
  if (out.weak) p += 2;
  if (p >= s.size() || s[p] != '"') return false;
  size_t open = p++;
  while (p < s.size() && is_etagc(s[p])) ++p;
  if (p >= s.size() || s[p] != '"') return false;  // a control, a space or the end first
  out.opaque = s.substr(open, p + 1 - open);
  pos = p + 1;
  return true;
}

// `s` is exactly one entity-tag.
bool whole_entity_tag(std::string_view s, EntityTag& out) noexcept {
  size_t pos = 0;
  return read_entity_tag(s, pos, out) && pos == s.size();
}

bool tags_equal(const EntityTag& a, const EntityTag& b, bool weak) noexcept {
  return a.opaque == b.opaque && (weak || (!a.weak && !b.weak));
}

enum class ListScan : uint8_t { match, no_match, malformed };

// One line of an entity-tag list. `target` null (the representation's own tag is not a
// valid entity-tag) matches only "*". `malformed` tells a caller walking several lines that
// the list ended early, so later lines are not looked at (they are the same list).
ListScan scan_list(std::string_view list, const EntityTag* target, bool weak) noexcept {
  list = trim_ows(list);
  if (list == "*") return ListScan::match;
  size_t pos = 0;
  for (;;) {
    while (pos < list.size() && (is_ows(list[pos]) || list[pos] == ',')) ++pos;
    if (pos == list.size()) return ListScan::no_match;
    EntityTag tag;
    if (!read_entity_tag(list, pos, tag)) return ListScan::malformed;
    // The element ends at OWS then a comma or the end; anything else spoils it, so it is
    // judged before it is compared.
    while (pos < list.size() && is_ows(list[pos])) ++pos;
    if (pos < list.size() && list[pos] != ',') return ListScan::malformed;
    if (target && tags_equal(tag, *target, weak)) return ListScan::match;
  }
}

// The list field `f` (named `name`) contains `etag`, over every line it came on.
bool list_contains(const Request& req, const FieldRef& f, std::string_view name,
                   std::string_view etag, bool weak) noexcept {
  EntityTag own;
  const EntityTag* target = whole_entity_tag(etag, own) ? &own : nullptr;
  if (f.count <= 1) return scan_list(f.value, target, weak) == ListScan::match;
  // Several lines, one list: a malformed element ends it on whatever line it is. A line
  // that is "*" by itself matches (the joined list would be malformed; the sender meant it).
  bool found = false, ended = false;
  req.for_each_value(name, [&](std::string_view line) {
    if (found || ended) return;
    ListScan r = scan_list(line, target, weak);
    found = r == ListScan::match;
    ended = r == ListScan::malformed;
  });
  return found;
}

// The date of a single-valued date field; a repeated one is no valid date (its lines
// joined by a comma are not an HTTP-date), so it is ignored like any other invalid date.
std::optional<std::time_t> date_of(const FieldRef& f) noexcept {
  if (f.count != 1) return std::nullopt;
  return parse_http_date(trim_ows(f.value));
}

}  // namespace

bool etag_list_contains(std::string_view list, std::string_view etag, bool weak) noexcept {
  EntityTag own;
  return scan_list(list, whole_entity_tag(etag, own) ? &own : nullptr, weak) == ListScan::match;
}

Precondition evaluate_preconditions(const Request& req, const Validators& v) noexcept {
  // 304 is for GET and HEAD only (§13.1.2, §13.1.3): another method gets 412 for a
  // matching If-None-Match, and If-Modified-Since does not apply to it.
  bool get_or_head = req.method == Method::get || req.method == Method::head;
  if (req.if_match.present()) {
    if (!list_contains(req, req.if_match, "if-match", v.etag, false)) return Precondition::failed;
  } else if (auto since = date_of(req.if_unmodified_since)) {
    if (v.last_modified > *since) return Precondition::failed;
  }
  if (req.if_none_match.present()) {
    if (list_contains(req, req.if_none_match, "if-none-match", v.etag, true))
      return get_or_head ? Precondition::not_modified : Precondition::failed;
  } else if (get_or_head) {
    if (auto since = date_of(req.if_modified_since); since && v.last_modified <= *since)
      return Precondition::not_modified;
  }
  return Precondition::proceed;
}

bool if_range_allows(const Request& req, const Validators& v) noexcept {
  const FieldRef& f = req.if_range;
  if (!f.present()) return true;
  if (f.count > 1) return false;
  std::string_view value = trim_ows(f.value);
  // An entity-tag starts with a quote or W/; an HTTP-date with a day name.
  if (!value.empty() && (value.front() == '"' || value.substr(0, 2) == "W/")) {
    EntityTag sent, own;
    return whole_entity_tag(value, sent) && whole_entity_tag(v.etag, own) &&
           tags_equal(sent, own, false);
  }
  auto date = parse_http_date(value);
  return date && v.last_modified_strong && *date == v.last_modified;
}

}  // namespace netloop::http
