// netloop-load's command line: parsing into LoadOptions, with messages for bad input.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "netloop/address.hpp"

namespace netloop::load {

struct LoadOptions {
  std::string scenario;  // "tcp-echo" or "udp-echo"
  Address target;
  size_t connections = 0;  // tcp-echo: --connections; udp-echo: --clients (one socket each)
  size_t size = 0;        // bytes per message
  double duration = 0;    // measured seconds
  size_t pipeline = 1;    // messages in flight per connection
  double warmup = 0;      // seconds run before measuring
  // udp-echo only:
  double loss_timeout = 0.2;  // seconds without an echo after which a datagram is lost
  double max_loss = 0.01;     // lost fraction of the measured window above which we fail
  bool json = false;
  bool help = false;
  bool version = false;
};

// Upper bounds that keep a typo from exhausting memory; none of them binds a real run.
constexpr size_t kMaxConnections = 1'000'000;
constexpr size_t kMaxMessageSize = 64 * 1024 * 1024;
constexpr size_t kMaxPipeline = 1024;  // IOV_MAX: one writev can carry every message
constexpr double kMaxSeconds = 7 * 24 * 3600;
// udp-echo: every datagram starts with the client id (4 bytes) and its sequence number
// (8 bytes); the largest is what one IPv4 UDP datagram can carry.
constexpr size_t kUdpHeaderBytes = 12;
constexpr size_t kMaxDatagramV4 = 65507;
constexpr size_t kMaxDatagramV6 = 65527;
constexpr size_t kMaxUdpClients = 100'000;
constexpr double kMaxLossTimeout = 60;

struct ParseOutcome {
  std::optional<LoadOptions> options;  // empty when `error` says what is wrong
  std::string error;
};

ParseOutcome parse_load_options(const std::vector<std::string>& args);
std::string load_usage();

}  // namespace netloop::load
