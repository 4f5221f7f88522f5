// Logging: level filter and the line format "2026-11-23T12:00:00.123Z WARN message".
#include "netloop/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace netloop {
namespace {
std::atomic<LogLevel> g_level{LogLevel::info};
constexpr std::string_view kNames[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};
}  // namespace

void set_log_level(LogLevel level) noexcept { g_level.store(level, std::memory_order_relaxed); }
LogLevel log_level() noexcept { return g_level.load(std::memory_order_relaxed); }

std::optional<LogLevel> parse_log_level(std::string_view name) noexcept {
  if (name == "debug") return LogLevel::debug;
  if (name == "info") return LogLevel::info;
  if (name == "warn" || name == "warning") return LogLevel::warn;
  if (name == "error") return LogLevel::error;
  if (name == "off" || name == "none") return LogLevel::off;
  return std::nullopt;
}

void log_line(LogLevel level, std::string_view message) {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t secs = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  // One fprintf per line so lines from several threads do not interleave.
  std::fprintf(stderr, "%s.%03dZ %s %.*s\n", stamp, int(ms), kNames[int(level)].data(),
               int(message.size()), message.data());
}

}  // namespace netloop
