// UdpLoadClient: UDP echo load on one netloop EventLoop: N client sockets, K datagrams
// in flight each, every echo matched to its datagram by client id and sequence number,
// loss by timeout.
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

struct UdpTally {
  uint64_t datagrams = 0;        // echoes matched in the measured window
  uint64_t total_datagrams = 0;  // ...since the first send, warm-up included
  uint64_t sent = 0;             // datagrams sent in the measured window
  uint64_t total_sent = 0;
  uint64_t lost = 0;             // declared lost (no echo within the timeout) in the window
  uint64_t total_lost = 0;
  uint64_t late = 0;             // echoes of datagrams already declared lost, or duplicates
  uint64_t mismatches = 0;       // echoes that differ from any datagram sent
  uint64_t send_errors = 0;      // sends the kernel refused (EAGAIN, ENOBUFS...): retried
  uint64_t icmp_errors = 0;      // ICMP errors reported on a socket (ECONNREFUSED: no server)
  uint64_t receive_calls = 0;    // recv/recvmmsg calls that returned datagrams
  uint64_t send_calls = 0;       // send/sendmmsg calls
};

class UdpLoadClient {
 public:
  UdpLoadClient(EventLoop& loop, const LoadOptions& options);
  ~UdpLoadClient();
  UdpLoadClient(const UdpLoadClient&) = delete;
  UdpLoadClient& operator=(const UdpLoadClient&) = delete;

  // Opens the client sockets, warms up, measures, and returns when the duration is over,
  // SIGINT/SIGTERM arrived, or nothing at all was echoed for a while. False (with `why`)
  // when the run could not start or never got an echo.
  bool run(std::string* why);

  const Histogram& latency() const noexcept { return latency_; }  // nanoseconds
  const UdpTally& tally() const noexcept { return tally_; }
  double measured_seconds() const noexcept;
  // Lost share of the measured window: lost / (matched + lost).
  double loss_fraction() const noexcept;
  bool interrupted() const noexcept { return interrupted_; }
  // Echoes of any kind received over the whole run (matched, late or mismatched).
  uint64_t echoes() const noexcept { return echoes_; }

 private:
  class Client;
  friend class Client;
  enum class Phase : uint8_t { idle, warmup, measuring, done };

  // A sent datagram's deadline; deadlines are queued in send order, so they are sorted.
  struct Deadline {
    uint64_t at_ns;
    uint64_t seq;
    uint32_t client;
  };

  bool open_all(std::string* why);
  void begin();
  void start_measuring();
  void finish();
  void on_tick();
  void watch(uint32_t client, uint64_t seq, uint64_t at_ns);
  void mark_dirty(uint32_t client);
  void retry_later(uint32_t client, uint32_t slot);
  void report_error(size_t client_id, const std::string& message);
  const char* pattern_for(size_t client_id, uint64_t seq) const noexcept;

  EventLoop& loop_;
  LoadOptions options_;
  Phase phase_ = Phase::idle;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<char> pattern_;           // every payload is a window into this
  uint64_t timeout_ns_ = 0;
  // Shared by every client: receive area and message headers for one batch.
  std::unique_ptr<char[]> rx_area_;
  std::vector<Deadline> ring_;  // a ring buffer of deadlines (size a power of two)
  size_t ring_head_ = 0;
  size_t ring_count_ = 0;
  std::vector<uint32_t> dirty_;                       // clients with sends queued by a tick
  std::vector<std::pair<uint32_t, uint32_t>> retry_;  // (client, slot) sends to try again
  Histogram latency_;
  UdpTally tally_;
  uint64_t echoes_ = 0;
  size_t errors_printed_ = 0;
  bool interrupted_ = false;
  bool no_echo_ = false;
  TimePoint measure_start_{};
  TimePoint measure_end_{};
};

}  // namespace netloop::load
