// echo-client: a client of an echo server (RFC 862), the worked example of "Writing a
// client" in docs/writing-a-handler.md.
//
// It sends its messages one at a time, each once the echo of the one before has come
// back, checks every echo byte for byte and times each round trip. It is meant to run
// under Connector::keep_connected(): each connection gets a new handler, and all of them
// share one Session, which remembers how far the echoes got.
//
// The guarantee: each message is counted once, in order, when its echo has come back
// intact. A message whose echo had not come back when the connection was lost is sent
// again on the next connection, so the server may see it twice: at least once, never
// lost, never counted twice. An echo that differs from what was sent ends the session:
// reconnecting cannot fix a server that answers wrongly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "netloop/protocol.hpp"

namespace echo_client {

struct Stats {
  uint64_t connects = 0;         // connections made
  uint64_t failed_connects = 0;  // connects that failed (keep_connected tries again)
  uint64_t lost = 0;             // connections that closed with messages still to echo
  uint64_t resent = 0;           // messages sent again because their echo was lost
  // Round trips of the echoed messages, on the loop's clock.
  netloop::Duration rtt_min = netloop::Duration::max();
  netloop::Duration rtt_max{};
  netloop::Duration rtt_total{};
};

// What every connection of one client shares: the messages and how far their echoes got.
// One loop, one thread: no lock.
struct Session {
  explicit Session(std::vector<std::string> m, netloop::Duration pause = {})
      : messages(std::move(m)), interval(pause) {}
  std::vector<std::string> messages;  // each non-empty, sent as is ('\n' ends a line)
  netloop::Duration interval{};       // the pause between an echo and the next message
  size_t echoed = 0;                  // messages[0, echoed) came back intact
  size_t sent = 0;                    // messages[0, sent) were sent at least once
  std::string error;                  // why the session failed (an echo that differs)
  Stats stats;

  // The program's hooks, called on the loop thread; any may be left empty.
  std::function<void(netloop::Connection&)> on_connected;
  // A connect failed or a connection was lost; keep_connected will try again.
  std::function<void(const netloop::CloseInfo&)> on_disconnected;
  // Every message is echoed, or `error` is set; the connection is closed.
  std::function<void()> on_finished;

  bool finished() const noexcept { return echoed == messages.size() || !error.empty(); }
};

class EchoClientHandler final : public netloop::StreamHandler {
 public:
  explicit EchoClientHandler(std::shared_ptr<Session> session) : session_(std::move(session)) {}

  void on_open(netloop::Connection& conn) override;
  void on_data(netloop::Connection& conn, netloop::Buffer& input) override;
  void on_close(netloop::Connection& conn, const netloop::CloseInfo& info) override;

 private:
  void send_next(netloop::Connection& conn);
  void fail(netloop::Connection& conn, size_t at);

  std::shared_ptr<Session> session_;
  bool waiting_ = false;       // messages[session_->echoed] is sent, its echo not all back
  size_t matched_ = 0;         // bytes of that echo that came back and matched
  netloop::TimePoint sent_at_{};
  netloop::TimerId pause_;     // the interval timer, re-armed for each pause
};

// Makes one handler per connection; every handler it makes shares `session`.
netloop::StreamHandlerFactory echo_client_factory(std::shared_ptr<Session> session);

}  // namespace echo_client
