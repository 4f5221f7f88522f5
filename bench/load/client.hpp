// LoadClient: N nonblocking TCP connections on one netloop EventLoop, each keeping K echo
// messages in flight, checking every echoed byte and timing every round trip.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "histogram.hpp"
#include "netloop/clock.hpp"
#include "netloop/event_loop.hpp"
#include "options.hpp"

namespace netloop::load {

struct Tally {
  uint64_t messages = 0;        // round trips completed in the measured window
  uint64_t total_messages = 0;  // ...since the first send, warm-up included
  uint64_t mismatches = 0;      // messages whose echo differed from what was sent
  uint64_t errors = 0;          // connections lost mid-run: reset, early EOF, socket error
};

class LoadClient {
 public:
  LoadClient(EventLoop& loop, const LoadOptions& options);
  ~LoadClient();
  LoadClient(const LoadClient&) = delete;
  LoadClient& operator=(const LoadClient&) = delete;

  // Connects, warms up, measures, and returns when the duration is over, every
  // connection is gone, or SIGINT/SIGTERM arrived. False (with `why`) when the run could
  // not start: descriptors exhausted, or a connection could not be established.
  bool run(std::string* why);

  const Histogram& latency() const noexcept { return latency_; }  // nanoseconds
  const Tally& tally() const noexcept { return tally_; }
  double measured_seconds() const noexcept;
  size_t live_connections() const noexcept { return live_; }
  bool interrupted() const noexcept { return interrupted_; }

 private:
  class Conn;
  friend class Conn;
  enum class Phase : uint8_t { connecting, warmup, measuring, done };

  bool open_all(std::string* why);
  void on_connected();
  void on_connect_failed(const std::string& message);
  void begin();
  void start_measuring();
  void finish();
  void report_error(size_t conn_id, const std::string& message);
  void connection_lost();
  const char* pattern_for(size_t conn_id, uint64_t seq) const noexcept;

  EventLoop& loop_;
  LoadOptions options_;
  Phase phase_ = Phase::connecting;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<char> pattern_;            // every message is a window into this
  std::unique_ptr<char[]> scratch_;      // one read area shared by every connection
  Histogram latency_;
  Tally tally_;
  size_t connected_ = 0;
  size_t connect_failed_ = 0;
  std::string first_connect_error_;
  size_t live_ = 0;
  size_t errors_printed_ = 0;
  bool interrupted_ = false;
  bool start_failed_ = false;
  TimePoint measure_start_{};
  TimePoint measure_end_{};
};

}  // namespace netloop::load
