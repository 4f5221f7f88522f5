// The two handlers of one proxied pair: the client's end (made by the listener's factory)
// and the upstream's end (handed to the Connector). Private to the proxy library.
//
// Ownership: each end is owned by its own connection (the client's by the listener, the
// upstream's by the Connector); neither owns the other. They know each other by plain
// pointers, from the upstream's on_open (the join) until the first of the two on_close
// calls, which unlinks both: no end touches the other's Connection after that one's
// on_close. Before the join the client end knows the upstream end it is connecting
// (`pending_`) and that end knows its client; whichever goes first tells the other.
//
//   client ── on_data ──▶ ClientEnd ── send ──▶ upstream connection
//   client ◀── send ──── UpstreamEnd ◀── on_data ── upstream
//
// Backpressure: an end whose partner's output is past the high-water mark pauses its own
// reading (`held_`) and resumes on the partner's on_drain, so each direction buffers at
// most the high-water mark plus one read. Half-close: a peer's end of stream becomes
// shutdown_write() on the other connection. Close: a reset, an error, an abort or a
// shutdown on one end aborts the other (a reset carried as a reset); an orderly close
// closes the other in order (what is buffered is written first).
#pragma once

#include <cstdint>
#include <memory>

#include "netloop/connector.hpp"
#include "netloop/counter.hpp"
#include "netloop/protocol.hpp"

namespace netloop::proxy {

class ProxyService;
class UpstreamEnd;

// What both ends share: forwarding with backpressure, the half-close, the close carried.
class PairEnd : public StreamHandler {
 public:
  ~PairEnd() override;
  void on_data(Connection& conn, Buffer& input) override;
  void on_peer_shutdown(Connection& conn, Buffer& input) override;
  void on_drain(Connection& conn) override;

 protected:
  // Joins this end (on `mine`) to `other` (on `theirs`). `forwarded` counts the bytes each
  // end moves, `active` is the pair's last activity.
  static void join(PairEnd& a, Connection& a_conn, Counter& a_forwarded, PairEnd& b,
                   Connection& b_conn, Counter& b_forwarded, TimePoint& active);
  // Our connection has closed (`info`): unlinks both ends, and the other follows.
  void leave(const CloseInfo& info);

  Connection* self_ = nullptr;   // our connection, from on_open until on_close
  Connection* other_ = nullptr;  // the partner's, while joined
  PairEnd* partner_ = nullptr;

 private:
  void unlink() noexcept;
  void follow(const CloseInfo& info);  // the partner closed: close or abort ours

  Counter* forwarded_ = nullptr;  // while joined
  TimePoint* active_ = nullptr;   // while joined: the client end's last_active_
  bool held_ = false;             // we paused our reading: the partner's output is full
};

// The client's end: made per accepted connection, it connects the upstream end.
class ClientEnd final : public PairEnd {
 public:
  explicit ClientEnd(std::shared_ptr<ProxyService> service);
  ~ClientEnd() override;

  void on_open(Connection& conn) override;
  // A graceful drain lets the pair run on: it ends by itself, or at the drain timeout.
  void on_server_draining(Connection&) override {}
  void on_close(Connection& conn, const CloseInfo& info) override;

  // From the upstream end being connected.
  void upstream_open(UpstreamEnd& end, Connection& up, size_t index);
  void upstream_failed(size_t index, const CloseInfo& info);
  void forget_pending() noexcept { pending_ = nullptr; }

 private:
  void connect_next();
  void on_idle_timer(Connection& conn);

  std::shared_ptr<ProxyService> service_;
  UpstreamEnd* pending_ = nullptr;  // the upstream end being connected
  ConnectId connect_id_ = 0;
  uint64_t tried_ = 0;  // bit i: upstream i was tried for this client
  TimePoint last_active_{};
  TimerId idle_timer_{};
};

// The upstream's end, owned by the Connector's connection (or pending connect).
class UpstreamEnd final : public PairEnd {
 public:
  UpstreamEnd(ProxyService& service, ClientEnd& client, size_t index)
      : service_(service), client_(&client), index_(index) {}
  ~UpstreamEnd() override;

  void on_open(Connection& up) override;
  void on_close(Connection& up, const CloseInfo& info) override;
  void forget_client() noexcept { client_ = nullptr; }

 private:
  ProxyService& service_;  // outlives us: it owns the Connector that owns us
  ClientEnd* client_;      // until the join, or until the client goes
  size_t index_;
  bool opened_ = false;
};

}  // namespace netloop::proxy
