// Percent-decoding and dot-segment resolution for request paths.
#include "http/request_path.hpp"

namespace netloop::http {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

PathResult refuse(std::string_view why) { return {400, why, false}; }

}  // namespace

PathResult normalize_path(std::string_view raw, std::string& out) {
  out.clear();
  if (raw.empty() || raw.front() != '/') return refuse("path does not start with '/'");
  // Decode and resolve in one pass, segment by segment: `out` grows by whole segments,
  // and ".." drops the last one. Decoding happens once, before the segment is judged, so
  // "%2e%2e" is "..", and "%2f" (which would turn one segment into two) is refused.
  size_t i = 1;
  bool last_was_dir = true;  // "/" alone names the root
  while (i <= raw.size()) {
    size_t seg_start = out.size();
    if (!out.empty()) out.push_back('/');
    size_t name_start = out.size();
    while (i < raw.size() && raw[i] != '/') {
      char c = raw[i];
      if (c == '%') {
        if (i + 2 >= raw.size()) return refuse("malformed percent-encoding");
        int hi = hex_value(raw[i + 1]), lo = hex_value(raw[i + 2]);
        if (hi < 0 || lo < 0) return refuse("malformed percent-encoding");
        c = char(hi * 16 + lo);
        if (c == '\0') return refuse("encoded NUL in path");
        if (c == '/' || c == '\\') return refuse("encoded slash in path");
        i += 3;
      } else {
        ++i;
      }
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        return refuse("control character in path");
      out.push_back(c);
    }
    std::string_view name(out.data() + name_start, out.size() - name_start);
    if (name.empty() || name == ".") {
      out.resize(seg_start);
      last_was_dir = true;
    } else if (name == "..") {
      out.resize(seg_start);
      if (out.empty()) return refuse("path climbs above the root");
      size_t cut = out.rfind('/');
      out.resize(cut == std::string::npos ? 0 : cut);
      last_was_dir = true;
    } else {
      last_was_dir = false;
    }
    ++i;  // past the '/' (or the end)
  }
  return {0, {}, last_was_dir};
}

}  // namespace netloop::http
