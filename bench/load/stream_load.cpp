// StreamLoad and Session: connecting through the Connector, the pipeline of each
// connection, and the phases of a run.
#include "stream_load.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <span>

#include "os_support.hpp"

namespace netloop::load {
namespace {

constexpr size_t kMaxErrorLines = 10;
constexpr auto kConnectTimeout = seconds(10);

Duration from_seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Session

Session::Session(StreamLoad& load, size_t slot)
    : load_(load),
      slot_(slot),
      depth_(load.options().pipeline),
      stamps_(new uint64_t[load.options().pipeline]) {}

Session::~Session() = default;

void Session::on_open(Connection& conn) {
  conn_ = &conn;
  if (prepare(conn)) ready();
}

void Session::ready() {
  ready_ = true;
  load_.session_ready(*this);
}

void Session::start() {
  if (ready_ && !stopped_) refill(now_ns());
}

void Session::on_data(Connection&, Buffer& input) {
  // Every workload parses as it goes, so nothing is ever left in the input: the bytes
  // stay in the loop's shared read area and the connection keeps no buffer of its own.
  const size_t n = input.size();
  load_.received(n);
  if (stopped_) {
    input.consume(n);
    return;
  }
  const uint64_t now = now_ns();
  consume(input.data(), n, now);
  input.consume(n);
  if (ready_ && load_.running()) refill(now);
}

void Session::on_peer_shutdown(Connection& conn, Buffer& input) {
  input.consume(input.size());
  if (!stopped_ && load_.running() && peer_ended(now_ns()) && !stopped_) {
    if (in_flight() > 0 || !ready_) {
      fail("the server closed the connection with " + std::to_string(in_flight()) +
           (in_flight() == 1 ? " request" : " requests") + " unanswered");
    } else {
      close_expected_ = true;  // an idle connection the server let go
    }
  }
  conn.close();
}

void Session::on_close(Connection&, const CloseInfo& info) {
  conn_ = nullptr;
  load_.session_closed(*this, info);
}

void Session::on_drain(Connection&) { pump(); }

void Session::refill(uint64_t now) {
  if (stopped_ || conn_ == nullptr) return;
  const uint64_t limit = received_ + depth_;
  if (sent_ >= limit) return;
  // A request's clock starts when it may be sent, so time spent queued behind a full
  // socket buffer counts as latency.
  for (uint64_t seq = sent_; seq < limit; ++seq) stamps_[seq % depth_] = now;
  sent_ = limit;
  pump();
}

// Writes the requests handed over and not yet written, in writes of up to kMaxPieces
// pieces and kMaxWrite bytes, while the connection has nothing of its own left to write:
// pipelined requests go out together, and a large backlog waits for on_drain instead of
// being copied into the connection's buffer.
void Session::pump() {
  while (conn_ != nullptr && !stopped_ && written_ < sent_ && conn_->is_open() &&
         conn_->pending_output() == 0) {
    std::string_view pieces[kMaxPieces];
    size_t count = 0;
    size_t bytes = 0;
    while (written_ < sent_ && bytes < kMaxWrite) {
      const std::string_view whole = request(written_);
      std::string_view part = whole.substr(written_pos_, kMaxWrite - bytes);
      if (count > 0 && pieces[count - 1].data() + pieces[count - 1].size() == part.data()) {
        pieces[count - 1] = {pieces[count - 1].data(), pieces[count - 1].size() + part.size()};
      } else if (count == kMaxPieces) {
        break;
      } else {
        pieces[count++] = part;
      }
      bytes += part.size();
      written_pos_ += part.size();
      if (written_pos_ == whole.size()) {
        ++written_;
        written_pos_ = 0;
      }
    }
    bytes_out_ += bytes;
    load_.wrote();
    if (count == 1) conn_->send(pieces[0]);
    else conn_->send(std::span<const std::string_view>(pieces, count));
  }
}

bool Session::complete(uint64_t now) {
  if (received_ == sent_) {
    fail("an answer to no request: the server sent more than was asked for");
    return false;
  }
  load_.answered(now - stamps_[received_ % depth_]);
  ++received_;
  return true;
}

void Session::fail(std::string_view why) {
  if (stopped_) return;
  stopped_ = failed_ = true;
  failure_ = std::string(why);
  if (conn_) conn_->abort();  // the stream cannot be framed any further
}

void Session::expect_close() {
  if (stopped_) return;
  stopped_ = true;
  close_expected_ = true;
  if (conn_) conn_->close();
}

// ---------------------------------------------------------------------------------------
// StreamLoad

StreamLoad::StreamLoad(EventLoop& loop, const LoadOptions& options, Workload& workload)
    : loop_(loop), options_(options), workload_(workload), connector_(loop) {
  connect_options_.timeout = kConnectTimeout;
  // Reading must never pause for the client's own output (an echo server that stops
  // reading while its replies back up would then wait for us forever): a session holds
  // at most one write of kMaxWrite bytes, and its prelude, unsent.
  connect_options_.connection.high_water =
      std::max(connect_options_.connection.high_water,
               2 * Session::kMaxWrite + workload.prelude_bytes());
}

StreamLoad::~StreamLoad() { phase_ = Phase::done; }

double StreamLoad::measured_seconds() const noexcept {
  if (measure_start_ == TimePoint{}) return 0.0;
  TimePoint end = measure_end_ == TimePoint{} ? Clock::now() : measure_end_;
  return std::chrono::duration<double>(end - measure_start_).count();
}

bool StreamLoad::run(std::string* why) {
  for (int sig : {SIGINT, SIGTERM}) {
    loop_.on_signal(sig, [this] {
      interrupted_ = true;
      finish();
    });
  }
  if (!ensure_descriptors(options_.connections, why, "--connections")) return false;
  if (options_.tls) {
    // One client context for every connection (OpenSSL's SSL_CTX is made once: its
    // certificate store is the costly part); it offers each server's last session again,
    // unless --tls-no-resume.
    TlsClientOptions& tls = tls_options_;
    tls.ca_file = options_.tls_ca;
    tls.verify_peer = options_.tls_verify;
    tls.resume_sessions = options_.tls_resume;
    tls.handshake_timeout = kConnectTimeout;
    std::string tls_why;
    auto ctx = TlsClientContext::create(tls, &tls_why);
    if (!ctx) {
      *why = "--tls: " + (tls_why.empty() ? ctx.error().message() : tls_why);
      return false;
    }
    connect_options_.tls = std::move(*ctx);
    connect_options_.tls_server_name = options_.tls_sni;
  }
  sessions_.assign(options_.connections, nullptr);
  for (size_t slot = 0; slot < options_.connections; ++slot) connect(slot);
  loop_.run();
  if (start_failed_) {
    // The Connector's text names the target and the addresses tried.
    *why = first_connect_error_ + " (" + std::to_string(connect_failed_) + " of " +
           std::to_string(options_.connections) + " connections failed)";
    return false;
  }
  return true;
}

void StreamLoad::connect(size_t slot) {
  ++pending_;
  connector_.connect(options_.host, options_.port, workload_.make_session(*this, slot),
                     connect_options_);
}

void StreamLoad::session_ready(Session& s) {
  --pending_;
  sessions_[s.slot()] = &s;
  ++live_;
  if (phase_ == Phase::connecting) {
    if (++ready_ == options_.connections) begin();
  } else if (running()) {
    s.start();
  }
}

void StreamLoad::session_closed(Session& s, const CloseInfo& info) {
  if (info.reason == CloseReason::connect_failed) {
    connect_failed(s.slot(), describe(info));
    return;
  }
  const bool was_ready = sessions_[s.slot()] == &s;
  if (was_ready) {
    sessions_[s.slot()] = nullptr;
    --live_;
  }
  if (phase_ == Phase::done) return;
  const bool clean = s.close_expected() && !s.failed();
  if (phase_ == Phase::connecting) {
    // Gone before the run began: as good as never connected.
    if (was_ready) {
      --ready_;
      ++pending_;  // connect_failed() counts it off
    }
    connect_failed(s.slot(), s.failed() ? s.failure()
                             : clean    ? std::string("the server closed the connection")
                                        : describe(info));
    return;
  }
  if (!was_ready) --pending_;
  if (!clean) {
    ++tally_.errors;
    report_error(s.slot(), s.failed() ? s.failure() : describe(info));
  }
  if (workload_.reconnects() && running()) {
    ++tally_.reconnects;
    connect(s.slot());
    return;
  }
  if (live_ == 0 && pending_ == 0) finish();  // every connection is gone
}

void StreamLoad::connect_failed(size_t slot, const std::string& message) {
  --pending_;
  if (phase_ == Phase::connecting) {
    if (connect_failed_++ == 0) first_connect_error_ = message;
    // Wait until every attempt has an answer, then give up on the run.
    if (ready_ + connect_failed_ == options_.connections) {
      start_failed_ = true;
      phase_ = Phase::done;
      loop_.stop();
    }
    return;
  }
  if (phase_ == Phase::done) return;
  ++tally_.errors;
  report_error(slot, "could not connect again: " + message);
  if (live_ == 0 && pending_ == 0) finish();
}

void StreamLoad::begin() {
  phase_ = options_.warmup > 0 ? Phase::warmup : Phase::measuring;
  if (phase_ == Phase::measuring) start_measuring();
  else loop_.run_after(from_seconds(options_.warmup), [this] { start_measuring(); });
  for (Session* s : sessions_) {
    if (phase_ == Phase::done) break;
    if (s) s->start();
  }
}

void StreamLoad::start_measuring() {
  if (phase_ == Phase::done) return;
  phase_ = Phase::measuring;
  latency_.clear();
  tally_.requests = 0;
  tally_.bytes_in = 0;
  workload_.start_measuring();
  measure_start_ = Clock::now();
  loop_.run_after(from_seconds(options_.duration), [this] { finish(); });
}

void StreamLoad::finish() {
  if (phase_ == Phase::done) return;
  if (measure_start_ != TimePoint{}) measure_end_ = Clock::now();
  phase_ = Phase::done;
  loop_.stop();
}

void StreamLoad::report_error(size_t slot, std::string_view message) {
  if (errors_printed_ < kMaxErrorLines) {
    std::fprintf(stderr, "netloop-load: connection %zu: %.*s\n", slot + 1, int(message.size()),
                 message.data());
  } else if (errors_printed_ == kMaxErrorLines) {
    std::fprintf(stderr, "netloop-load: further errors are counted but not shown\n");
  }
  ++errors_printed_;
}

std::string StreamLoad::describe(const CloseInfo& info) const {
  switch (info.reason) {
    case CloseReason::connect_failed:
      return info.text.empty() ? info.error.message() : info.text;
    case CloseReason::reset:
      return "connection reset by the server (" + info.error.message() + ")";
    case CloseReason::peer:
      return "the server closed the connection";
    default: {
      std::string out = "connection closed (" + std::string(to_string(info.reason)) + ")";
      if (info.error) out += ": " + info.error.message();
      if (!info.text.empty()) out += ": " + info.text;
      return out;
    }
  }
}

}  // namespace netloop::load
