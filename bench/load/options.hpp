// netloop-load's command line: parsing into LoadOptions, with messages for bad input.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "netloop/address.hpp"

namespace netloop::load {

struct LoadOptions {
  std::string scenario;  // "tcp-echo" (the only one so far)
  Address target;
  size_t connections = 0;
  size_t size = 0;        // bytes per message
  double duration = 0;    // measured seconds
  size_t pipeline = 1;    // messages in flight per connection
  double warmup = 0;      // seconds run before measuring
  bool json = false;
  bool help = false;
  bool version = false;
};

// Upper bounds that keep a typo from exhausting memory; none of them binds a real run.
constexpr size_t kMaxConnections = 1'000'000;
constexpr size_t kMaxMessageSize = 64 * 1024 * 1024;
constexpr size_t kMaxPipeline = 1024;  // IOV_MAX: one writev can carry every message
constexpr double kMaxSeconds = 7 * 24 * 3600;

struct ParseOutcome {
  std::optional<LoadOptions> options;  // empty when `error` says what is wrong
  std::string error;
};

ParseOutcome parse_load_options(const std::vector<std::string>& args);
std::string load_usage();

}  // namespace netloop::load
