// doctest main for the integration tests: ignores SIGPIPE (clients also send with
// MSG_NOSIGNAL) and keeps the library's log to warnings and errors.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>

#include "netloop/log.hpp"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  netloop::set_log_level(netloop::LogLevel::warn);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
