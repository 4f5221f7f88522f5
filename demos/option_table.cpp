// The generic option parser and usage printer.
#include "option_table.hpp"

#include <charconv>
#include <chrono>

#include "netloop/byte_size.hpp"

namespace netloop::demo {
namespace {

const Option* find(std::span<const OptionGroup> groups, std::string_view name) {
  for (const auto& g : groups)
    for (const auto& opt : g.options)
      if (opt.name == name) return &opt;
  return nullptr;
}

constexpr size_t kHelpColumn = 25;

}  // namespace

std::string apply_options(std::span<const OptionGroup> groups, const std::vector<std::string>& args,
                          DemoOptions& o) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::string value;
    bool has_inline = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    const Option* opt = find(groups, arg == "-h" ? "--help" : arg);
    if (!opt) return "unknown option '" + args[i] + "' (see --help)";
    if (opt->value.empty()) {
      if (has_inline) return arg + " takes no value";
    } else if (!has_inline) {
      if (i + 1 >= args.size()) return arg + " needs " + std::string(opt->missing);
      value = args[++i];
    }
    if (std::string why = opt->apply(o, value); !why.empty()) return why;
  }
  return {};
}

std::string render_groups(std::span<const OptionGroup> groups) {
  std::string out;
  for (const auto& g : groups) {
    out += "\n";
    out += g.title;
    out += ":\n";
    for (const auto& opt : g.options) {
      std::string first = "  " + std::string(opt.name);
      if (!opt.value.empty()) first += " " + std::string(opt.value);
      std::string_view help = opt.help;
      bool own_line = first.size() + 1 > kHelpColumn;
      out += first;
      if (own_line) {
        // A long name: its help starts beside it all the same, two spaces on.
        out += "  ";
      } else {
        out.append(kHelpColumn - first.size(), ' ');
      }
      for (bool line_one = true;; line_one = false) {
        size_t nl = help.find('\n');
        if (!line_one) out.append(kHelpColumn, ' ');
        out += help.substr(0, nl);
        out += "\n";
        if (nl == std::string_view::npos) break;
        help.remove_prefix(nl + 1);
      }
    }
  }
  return out;
}

bool parse_count(const std::string& v, size_t min, size_t max, size_t& out) {
  size_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < min || n > max) return false;
  out = n;
  return true;
}

// "10", "10s", "0.5", "500ms": seconds, or milliseconds with "ms".
std::string parse_duration(std::string_view name, const std::string& v, Duration& out) {
  std::string number = v;
  double scale = 1;
  if (number.size() > 2 && number.ends_with("ms")) {
    number.resize(number.size() - 2);
    scale = 0.001;
  } else if (number.size() > 1 && number.ends_with("s")) {
    number.pop_back();
  }
  Duration d{};
  if (!parse_timeout(name, number, false, d).empty())
    return std::string(name) + " " + v + ": expected a duration above 0 up to a day, e.g. 10s, 0.5 or 500ms";
  out = std::chrono::duration_cast<Duration>(d * scale);
  if (out <= Duration::zero())
    return std::string(name) + " " + v + ": expected a duration above 0 up to a day, e.g. 10s, 0.5 or 500ms";
  return {};
}

std::string parse_timeout(std::string_view name, const std::string& v, bool zero_ok, Duration& out) {
  double secs = -1;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), secs);
  bool ok = !v.empty() && ec == std::errc() && end == v.data() + v.size() && secs >= 0 &&
            secs <= 86400 && (zero_ok || secs > 0);
  if (ok) {
    auto d = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(secs));
    if (zero_ok || d > Duration::zero()) {
      out = d;
      return {};
    }
  }
  return std::string(name) + " " + v + ": expected seconds from " + (zero_ok ? "0" : "above 0") +
         " to 86400, e.g. 60 or 0.5";
}

std::string parse_positive_size(std::string_view name, const std::string& v, size_t& out) {
  auto n = parse_byte_size(v);
  if (!n || *n == 0)
    return std::string(name) + " " + v + ": expected a positive size such as 65536, 64k or 1m";
  out = *n;
  return {};
}

}  // namespace netloop::demo
