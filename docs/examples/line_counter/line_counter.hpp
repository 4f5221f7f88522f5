// line-counter: a small line-based counter service, the worked example of
// docs/writing-a-handler.md.
//
//   INCR name  ->  OK <new value>   (a counter starts at 0)
//   GET name   ->  OK <value>
//   QUIT       ->  BYE, then the connection closes
//
// One command per line, ended by LF (a CR before it is dropped); blank lines are ignored.
// Commands may be pipelined: replies come back in order. Mistakes get "ERR <why>" and the
// connection goes on, except a line longer than max_line (ERR, then close). A line with
// control characters is not a client of ours: the connection is aborted, without a reply.
// A connection that sends no command for idle_timeout gets "ERR idle timeout" and closes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "netloop/protocol.hpp"

namespace line_counter {

// Every limit has a default that is safe on the open internet.
struct Options {
  size_t max_line = 1024;        // longest line accepted, its CR LF included
  size_t max_name = 64;          // longest counter name
  size_t max_counters = 100000;  // INCR of a new name past this many: ERR
  netloop::Duration idle_timeout = netloop::seconds(60);  // zero: never
};

struct Stats {
  uint64_t connections = 0;  // opened, ever
  uint64_t open = 0;         // open now
  uint64_t commands = 0;
  uint64_t idle_timeouts = 0;
  std::array<uint64_t, 8> closes{};  // by CloseReason
  uint64_t closed(netloop::CloseReason r) const { return closes[size_t(r)]; }
};

// What every connection of one event loop shares: the counters, the stats, and a scratch
// area for replies. One loop runs on one thread and calls one handler at a time, so
// none of it needs a lock (see "Thread model" in the tutorial).
struct Service {
  explicit Service(Options o = {}) : options(o) {}
  Options options;
  std::map<std::string, int64_t, std::less<>> counters;  // less<>: find() by string_view
  Stats stats;
  std::string replies;  // one on_data call's replies, sent in one send()
};

class LineCounterHandler final : public netloop::StreamHandler {
 public:
  explicit LineCounterHandler(std::shared_ptr<Service> service) : service_(std::move(service)) {}

  void on_open(netloop::Connection& conn) override;
  void on_data(netloop::Connection& conn, netloop::Buffer& input) override;
  void on_peer_shutdown(netloop::Connection& conn, netloop::Buffer& input) override;
  void on_close(netloop::Connection& conn, const netloop::CloseInfo& info) override;

 private:
  bool execute(std::string_view line, std::string& out);
  void arm_idle_timer(netloop::Connection& conn, netloop::Duration delay);
  void on_idle_timer(netloop::Connection& conn);

  std::shared_ptr<Service> service_;
  netloop::TimePoint last_command_{};  // the idle deadline is this + idle_timeout
  netloop::TimerId idle_timer_;
  bool stalled_ = false;    // complete commands wait in the input behind a full output
  bool peer_done_ = false;  // the peer sent its end of stream
};

// Makes one handler per connection; every handler it makes shares `service`.
netloop::StreamHandlerFactory line_counter_factory(std::shared_ptr<Service> service);

}  // namespace line_counter
