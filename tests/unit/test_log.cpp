// Unit tests for the log functions (lib/src/log.cpp, netloop/log.hpp): arguments are
// formatted only when their level is on, and an Address formats itself.
#include <doctest/doctest.h>

#include <string>

#include "netloop/log.hpp"

namespace {

int g_formatted = 0;  // how many times a Probe was formatted

struct Probe {};

}  // namespace

template <>
struct fmt::formatter<Probe> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const Probe&, Context& ctx) const {
    ++g_formatted;
    return fmt::formatter<std::string_view>::format("probe", ctx);
  }
};

TEST_CASE("log: arguments are not formatted when their level is off") {
  netloop::LogLevel before = netloop::log_level();
  netloop::set_log_level(netloop::LogLevel::error);
  g_formatted = 0;
  netloop::log_debug("{}", Probe{});
  netloop::log_info("{}", Probe{});
  netloop::log_warn("{}", Probe{});
  CHECK(g_formatted == 0);
  netloop::set_log_level(netloop::LogLevel::off);
  netloop::log_error("{}", Probe{});
  CHECK(g_formatted == 0);
  netloop::set_log_level(netloop::LogLevel::warn);
  netloop::log_warn("{} (expected in the test output)", Probe{});
  CHECK(g_formatted == 1);
  netloop::set_log_level(before);
}

TEST_CASE("log: an Address formats as its text") {
  CHECK(fmt::format("{}", netloop::Address::ipv4_loopback(80)) == "127.0.0.1:80");
  auto v6 = netloop::Address::parse_numeric("[::1]:7007");
  REQUIRE(v6.ok());
  CHECK(fmt::format("peer {}", *v6) == "peer [::1]:7007");
}
