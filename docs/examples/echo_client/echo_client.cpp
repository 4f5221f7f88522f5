// echo-client: the per-connection handler (send, check the echo, time it, resend after a
// reconnect).
#include "echo_client.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <system_error>

namespace echo_client {

using netloop::Buffer;
using netloop::CloseInfo;
using netloop::CloseReason;
using netloop::Connection;
using netloop::Duration;

void EchoClientHandler::on_open(Connection& conn) {
  Session& s = *session_;
  ++s.stats.connects;
  if (s.sent > s.echoed) ++s.stats.resent;  // its echo went down with the last connection
  if (s.on_connected) s.on_connected(conn);
  send_next(conn);
}

// Starts from the session's first message not yet echoed, whatever this connection sent
// before: that is what makes a reconnect resend what was lost.
void EchoClientHandler::send_next(Connection& conn) {
  Session& s = *session_;
  if (s.finished()) {
    conn.close();
    return;
  }
  conn.send(s.messages[s.echoed]);
  s.sent = std::max(s.sent, s.echoed + 1);
  sent_at_ = conn.now();
  waiting_ = true;
  matched_ = 0;
}

void EchoClientHandler::on_data(Connection& conn, Buffer& input) {
  Session& s = *session_;
  while (!input.empty()) {
    if (!waiting_) return fail(conn, 0);  // bytes we never sent
    // Check what has come and consume it: an echo may arrive in any number of pieces,
    // and only the offset into it is kept between calls.
    std::string_view want = std::string_view(s.messages[s.echoed]).substr(matched_);
    std::string_view got = input.view().substr(0, want.size());
    auto [w, g] = std::mismatch(want.begin(), want.end(), got.begin(), got.end());
    if (g != got.end()) return fail(conn, matched_ + size_t(g - got.begin()));
    input.consume(got.size());
    matched_ += got.size();
    if (w != want.end()) return;  // the rest of this echo has not arrived yet

    const Duration rtt = conn.now() - sent_at_;
    s.stats.rtt_min = std::min(s.stats.rtt_min, rtt);
    s.stats.rtt_max = std::max(s.stats.rtt_max, rtt);
    s.stats.rtt_total += rtt;
    ++s.echoed;
    waiting_ = false;
    if (s.interval == Duration::zero() || s.finished()) {
      send_next(conn);
    } else if (pause_) {
      conn.restart_timer(pause_, s.interval);  // the connection's timer, already used once
    } else {
      pause_ = conn.start_timer(s.interval, Duration::zero(), [this](Connection& c) {
        if (c.is_open()) send_next(c);
      });
    }
  }
}

// An echo that differs from the message at byte `at` (or bytes nobody asked for).
void EchoClientHandler::fail(Connection& conn, size_t at) {
  Session& s = *session_;
  s.error = waiting_ ? "the echo of message " + std::to_string(s.echoed + 1) +
                           " differs from what was sent at byte " + std::to_string(at)
                     : "the server sent bytes that echo nothing we sent";
  conn.close(std::make_error_code(std::errc::bad_message), s.error);
}

// A session is finished only by a connection: with nothing to send, it still connects.
void EchoClientHandler::on_close(Connection&, const CloseInfo& info) {
  Session& s = *session_;
  if (info.reason == CloseReason::connect_failed) {
    ++s.stats.failed_connects;
  } else if (s.finished()) {
    if (s.on_finished) s.on_finished();
    return;
  } else {
    ++s.stats.lost;
  }
  if (s.on_disconnected) s.on_disconnected(info);
}

netloop::StreamHandlerFactory echo_client_factory(std::shared_ptr<Session> session) {
  return [session = std::move(session)] { return std::make_unique<EchoClientHandler>(session); };
}

}  // namespace echo_client
