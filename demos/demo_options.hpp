// netloop-demo's command line: parsing into DemoOptions, with messages for bad input.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "http/http_options.hpp"
#include "netloop/address.hpp"
#include "netloop/log.hpp"
#include "netloop/tcp_connection.hpp"
#include "netloop/udp_socket.hpp"

namespace netloop::demo {

struct DemoOptions {
  std::vector<Address> tcp_echo;
  std::vector<Address> udp_echo;
  std::vector<Address> http;
  std::vector<Address> chat;
  std::vector<Address> kv;
  std::optional<Address> metrics;
  size_t metrics_max_connections = 8;
  size_t threads = 1;
  Duration drain_timeout = seconds(10);
  size_t max_connections = 10'000;
  http::HttpOptions http_options;
  std::string poller;  // empty: the default backend
  LogLevel log_level = LogLevel::info;
  ConnectionOptions connection;
  UdpOptions udp;
  bool list_pollers = false;
  bool help = false;
  bool version = false;
};

struct ParseOutcome {
  std::optional<DemoOptions> options;  // empty when `error` says what is wrong
  std::string error;
};

ParseOutcome parse_demo_options(const std::vector<std::string>& args);
std::string demo_usage();

}  // namespace netloop::demo
