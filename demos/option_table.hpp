// The command line as tables: every option is declared once (name, value, help, and what
// it does), and one generic parser and one usage printer work from the tables.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "netloop/clock.hpp"

namespace netloop::demo {

struct DemoOptions;

struct Option {
  std::string_view name;     // "--header-timeout"
  std::string_view value;    // shown in --help ("SECS"); empty for a flag, which takes none
  std::string_view missing;  // said when the value is missing: "--NAME needs <missing>"
  std::string_view help;     // lines separated by '\n'
  // Stores `value` ("" for a flag) in `o`; returns what is wrong with it, or "".
  std::function<std::string(DemoOptions& o, const std::string& value)> apply;
};

struct OptionGroup {
  std::string_view title;  // "HTTP", "Reactor", ...
  std::vector<Option> options;
};

// Applies `args` to `o` option by option ("--name value" and "--name=value" alike); the
// first problem ends the parse and is returned ("" when all went well).
std::string apply_options(std::span<const OptionGroup> groups, const std::vector<std::string>& args,
                          DemoOptions& o);

// The groups as --help shows them: each title, then one line per option with its help
// beside it (continuation lines aligned under the first).
std::string render_groups(std::span<const OptionGroup> groups);

// Parsing helpers shared by the option tables.
// A whole number from `min` to `max`; false otherwise.
bool parse_count(const std::string& v, size_t min, size_t max, size_t& out);
// Seconds as a decimal number up to a day ("60", "0.5"), above 0 unless `zero_ok`; the
// error names the option and the range ("" when stored).
std::string parse_timeout(std::string_view name, const std::string& v, bool zero_ok, Duration& out);
// "10", "10s", "0.5", "500ms": a duration above 0 up to a day.
std::string parse_duration(std::string_view name, const std::string& v, Duration& out);
// A size above 0 ("65536", "64k", "1m"); the error names the option.
std::string parse_positive_size(std::string_view name, const std::string& v, size_t& out);

}  // namespace netloop::demo
