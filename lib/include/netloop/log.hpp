// Leveled logging to stderr, one line per event, with a timestamp.
#pragma once

#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "netloop/address.hpp"

namespace netloop {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

void set_log_level(LogLevel level) noexcept;
LogLevel log_level() noexcept;
std::optional<LogLevel> parse_log_level(std::string_view name) noexcept;
void log_line(LogLevel level, std::string_view message);

namespace detail {
// An Address becomes its text here, after the level check, so that the caller passes the
// object and pays nothing when the level is off. (Formatting it with fmt::formatter code
// compiled into this library would also work, but UBSan's vptr check then trips over
// fmt's buffer type, whose typeinfo the shared libfmt does not export.)
template <class T>
decltype(auto) log_arg(T&& v) {
  if constexpr (std::is_same_v<std::remove_cvref_t<T>, Address>) return v.to_string();
  else return std::forward<T>(v);
}
}  // namespace detail

// The arguments are formatted only when the level is on. Pass objects, not their text:
// log_debug("{}", peer) costs nothing when debug is off, where
// log_debug("{}", peer.to_string()) builds the string first.
template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level < log_level()) return;
  auto line = [&f](const auto&... converted) {
    return fmt::vformat(f, fmt::make_format_args(converted...));
  };
  log_line(level, line(detail::log_arg(args)...));
}
template <class... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::debug, f, std::forward<Args>(a)...); }
template <class... Args>
void log_info(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::info, f, std::forward<Args>(a)...); }
template <class... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::warn, f, std::forward<Args>(a)...); }
template <class... Args>
void log_error(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::error, f, std::forward<Args>(a)...); }

}  // namespace netloop

// "127.0.0.1:80" or "[::1]:80" (the log functions turn an Address into its text before
// formatting; this is for fmt::format and the compile-time check of log format strings).
template <>
struct fmt::formatter<netloop::Address> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const netloop::Address& a, Context& ctx) const {
    return fmt::formatter<std::string_view>::format(a.to_string(), ctx);
  }
};
