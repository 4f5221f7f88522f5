// StreamLoad: N TCP connections made by netloop's Connector on one event loop, each
// driven by a Session that keeps K requests in flight and times every answer; the
// phases of a run (connect, warm-up, measure) and its tallies.
//
// What a request and its answer are belongs to a Workload (echo messages, HTTP GETs,
// Redis commands): it makes the Session of each connection, which says how to send
// requests and how to read answers. Everything else (pipelining, latency, errors,
// reconnecting) is here, once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "histogram.hpp"
#include "netloop/clock.hpp"
#include "netloop/connector.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/protocol.hpp"
#include "options.hpp"

namespace netloop::load {

struct StreamTally {
  uint64_t requests = 0;        // answered in the measured window
  uint64_t total_requests = 0;  // ...since the first send, warm-up included
  uint64_t bytes_in = 0;        // bytes received in the measured window
  // Connections lost mid-run: reset, closed with requests unanswered, an answer that
  // does not parse, a connect again that failed.
  uint64_t errors = 0;
  uint64_t reconnects = 0;  // connections made again after the server closed one
  uint64_t writes = 0;      // sends of requests (each one write when the kernel takes it)
};

class StreamLoad;

// One connection's handler: its requests in flight and when each was sent.
class Session : public StreamHandler {
 public:
  Session(StreamLoad& load, size_t slot);
  ~Session() override;

  // Bytes handed to the connection in one write at most: past them the session waits for
  // the kernel to take what it has (on_drain), so a connection copies no more than this of
  // a pushed-back write into its own buffer, however large the requests.
  static constexpr size_t kMaxWrite = 256 * 1024;
  static constexpr size_t kMaxPieces = 64;  // requests (or parts) gathered into one write

  void on_open(Connection& conn) final;
  void on_data(Connection& conn, Buffer& input) final;
  void on_peer_shutdown(Connection& conn, Buffer& input) final;
  void on_drain(Connection& conn) final;
  void on_close(Connection& conn, const CloseInfo& info) final;

  // The run has begun: fill the pipeline.
  void start();
  size_t slot() const noexcept { return slot_; }
  uint64_t in_flight() const noexcept { return sent_ - received_; }
  bool failed() const noexcept { return failed_; }
  bool close_expected() const noexcept { return close_expected_; }
  const std::string& failure() const noexcept { return failure_; }  // what fail() said

 protected:
  // The bytes of request number `seq`, valid while the session lives. Requests whose
  // bytes lie back to back in memory go out as one piece.
  virtual std::string_view request(uint64_t seq) const noexcept = 0;
  // Parses `n` received bytes; calls complete() for each answer. Stops early after
  // fail() or expect_close().
  virtual void consume(const char* data, size_t n, uint64_t now) = 0;
  // The peer ended its stream: finish an answer delimited by the close (complete() it,
  // expect_close()), or fail() if the stream ended inside one. Returns false after fail().
  virtual bool peer_ended(uint64_t now) { (void)now; return true; }
  // Before the requests: true when the connection is ready at once; otherwise the
  // session calls ready() itself later (after a request of its own is answered).
  virtual bool prepare(Connection& conn) { (void)conn; return true; }

  // The oldest request in flight is answered (at `now`). False, after fail(), when none
  // was in flight.
  bool complete(uint64_t now);
  // The connection cannot go on (an answer that does not parse): counted as an error,
  // reported, and the connection reset.
  void fail(std::string_view why);
  // The server said it closes the connection after this answer: send nothing more, and
  // close (the load makes a new connection).
  void expect_close();
  void ready();
  // Still reading answers: not failed, not closing.
  bool active() const noexcept { return !stopped_; }
  uint64_t received() const noexcept { return received_; }
  uint64_t bytes_written() const noexcept { return bytes_out_; }  // handed to the connection

  StreamLoad& load_;

 private:
  void refill(uint64_t now);
  void pump();

  size_t slot_;
  size_t depth_;
  Connection* conn_ = nullptr;
  std::unique_ptr<uint64_t[]> stamps_;  // when each request in flight was sent, by seq % depth
  uint64_t sent_ = 0;          // requests handed over (and timed from then)
  uint64_t written_ = 0;       // requests written in full to the connection
  size_t written_pos_ = 0;     // bytes of request written_ already written
  uint64_t bytes_out_ = 0;
  uint64_t received_ = 0;
  bool ready_ = false;
  bool stopped_ = false;         // failed or closing: nothing more is sent or parsed
  bool failed_ = false;
  bool close_expected_ = false;  // the server announced (or delimited by) the close
  std::string failure_;
};

class Workload {
 public:
  virtual ~Workload() = default;
  virtual std::unique_ptr<Session> make_session(StreamLoad& load, size_t slot) = 0;
  // Whether a connection the server closed is made again (http, resp), or lost for the
  // rest of the run (tcp-echo: a server that closes an echo connection is broken).
  virtual bool reconnects() const noexcept = 0;
  // The measured window begins: forget the counts of the warm-up.
  virtual void start_measuring() {}
  // Bytes a session sends of its own before its requests (resp get's SET).
  virtual size_t prelude_bytes() const noexcept { return 0; }
};

class StreamLoad {
 public:
  StreamLoad(EventLoop& loop, const LoadOptions& options, Workload& workload);
  ~StreamLoad();
  StreamLoad(const StreamLoad&) = delete;
  StreamLoad& operator=(const StreamLoad&) = delete;

  // Connects, warms up, measures, and returns when the duration is over, every
  // connection is gone, or SIGINT/SIGTERM arrived. False (with `why`) when the run could
  // not start: descriptors exhausted, or a connection could not be made.
  bool run(std::string* why);

  const Histogram& latency() const noexcept { return latency_; }  // nanoseconds
  const StreamTally& tally() const noexcept { return tally_; }
  double measured_seconds() const noexcept;
  size_t live_connections() const noexcept { return live_; }
  bool interrupted() const noexcept { return interrupted_; }
  const LoadOptions& options() const noexcept { return options_; }

  // --- For sessions ---------------------------------------------------------------------
  bool measuring() const noexcept { return phase_ == Phase::measuring; }
  bool running() const noexcept { return phase_ == Phase::warmup || phase_ == Phase::measuring; }
  void answered(uint64_t latency_ns) noexcept {
    if (phase_ == Phase::measuring) {
      latency_.record(latency_ns);
      ++tally_.requests;
    }
    if (phase_ != Phase::done) ++tally_.total_requests;
  }
  void wrote() noexcept { ++tally_.writes; }
  void received(size_t n) noexcept {
    if (phase_ == Phase::measuring) tally_.bytes_in += n;
  }
  // Prints one line about connection `slot` (the first ten; the rest are only counted).
  void report_error(size_t slot, std::string_view message);
  void session_ready(Session& s);
  void session_closed(Session& s, const CloseInfo& info);

 private:
  enum class Phase : uint8_t { connecting, warmup, measuring, done };

  void connect(size_t slot);
  void connect_failed(size_t slot, const std::string& message);
  void begin();
  void start_measuring();
  void finish();
  std::string describe(const CloseInfo& info) const;

  EventLoop& loop_;
  LoadOptions options_;
  Workload& workload_;
  ConnectOptions connect_options_;
  TlsClientOptions tls_options_;  // --tls: what each client context is made with
  Phase phase_ = Phase::connecting;
  std::vector<Session*> sessions_;  // the ready session of each slot, or null
  Histogram latency_;
  StreamTally tally_;
  size_t ready_ = 0;           // sessions that became ready while connecting
  size_t connect_failed_ = 0;  // ...and those that could not connect
  std::string first_connect_error_;
  size_t live_ = 0;     // ready sessions
  size_t pending_ = 0;  // connects started whose session is not ready yet
  size_t errors_printed_ = 0;
  bool interrupted_ = false;
  bool start_failed_ = false;
  TimePoint measure_start_{};
  TimePoint measure_end_{};
  // Last: destroyed first (closing every connection, whose sessions still report here).
  Connector connector_;
};

}  // namespace netloop::load
