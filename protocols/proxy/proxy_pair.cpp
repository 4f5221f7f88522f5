// The two ends of a proxied pair: forwarding, backpressure, half-close and the close of
// one end carried to the other; the client end's upstream choice and idle timeout.
#include "proxy/proxy_pair.hpp"

#include <utility>

#include "netloop/log.hpp"
#include "proxy/tcp_proxy.hpp"

namespace netloop::proxy {

// --- PairEnd -----------------------------------------------------------------------------

PairEnd::~PairEnd() {
  // Normally unlinked by the first on_close already; a handler destroyed without one
  // (a cancelled connect) must not leave the other end pointing at it.
  unlink();
}

void PairEnd::join(PairEnd& a, Connection& a_conn, Counter& a_forwarded, PairEnd& b,
                   Connection& b_conn, Counter& b_forwarded, TimePoint& active) {
  a.partner_ = &b;
  a.other_ = &b_conn;
  a.forwarded_ = &a_forwarded;
  a.active_ = &active;
  b.partner_ = &a;
  b.other_ = &a_conn;
  b.forwarded_ = &b_forwarded;
  b.active_ = &active;
}

void PairEnd::unlink() noexcept {
  if (PairEnd* p = std::exchange(partner_, nullptr)) {
    p->partner_ = nullptr;
    p->other_ = nullptr;
    p->forwarded_ = nullptr;
    p->active_ = nullptr;
  }
  other_ = nullptr;
  forwarded_ = nullptr;
  active_ = nullptr;
}

void PairEnd::on_data(Connection& conn, Buffer& input) {
  const size_t n = input.size();
  if (!other_) {  // the partner is gone and our close is on its way
    input.consume(n);
    return;
  }
  // send() writes at once what the kernel takes and buffers the rest on the partner's
  // connection: the bytes are copied once, from our read into its socket.
  other_->send(input.data(), n);
  input.consume(n);
  *forwarded_ += n;
  *active_ = conn.now();
  if (!held_ && other_->output_full()) {
    held_ = true;
    conn.pause_reading();  // until the partner's on_drain
  }
}

void PairEnd::on_drain(Connection& conn) {
  if (active_) *active_ = conn.now();
  if (partner_ && partner_->held_) {
    partner_->held_ = false;
    other_->resume_reading();
  }
}

void PairEnd::on_peer_shutdown(Connection& conn, Buffer& input) {
  if (!input.empty()) on_data(conn, input);
  if (!other_) {
    conn.close();
    return;
  }
  // Our peer sends no more: neither will we to the other's peer, once what is buffered
  // is written. Our connection stays open for what comes the other way.
  other_->shutdown_write();
}

void PairEnd::leave(const CloseInfo& info) {
  PairEnd* p = partner_;
  unlink();
  self_ = nullptr;
  if (p) p->follow(info);
}

void PairEnd::follow(const CloseInfo& info) {
  Connection* me = self_;
  if (!me || !me->is_open()) return;
  switch (info.reason) {
    case CloseReason::reset:
    case CloseReason::error:
    case CloseReason::aborted:
    case CloseReason::shutdown:
    case CloseReason::connect_failed:
      me->abort();  // the stream was cut: say so, rather than end it as if complete
      break;
    case CloseReason::local:
    case CloseReason::peer:
    case CloseReason::protocol:
    case CloseReason::idle:
      me->close();  // in order: what is buffered is written first
      break;
  }
}

// --- ClientEnd ---------------------------------------------------------------------------

ClientEnd::ClientEnd(std::shared_ptr<ProxyService> service) : service_(std::move(service)) {}

ClientEnd::~ClientEnd() {
  if (pending_) pending_->forget_client();
}

void ClientEnd::on_open(Connection& conn) {
  self_ = &conn;
  ++service_->stats().clients;
  // Nothing is read from the client until its upstream is connected: no bytes to hold
  // meanwhile, and a client can be retried on another upstream with nothing lost.
  conn.pause_reading();
  connect_next();
}

void ClientEnd::connect_next() {
  auto index = service_->pool().pick(self_->now(), tried_);
  if (!index) {
    ++service_->stats().no_upstream;
    log_debug("proxy {}: no upstream could be reached for client {}; closing",
              service_->stats().listener, self_->peer_address());
    self_->close();
    return;
  }
  tried_ |= uint64_t{1} << *index;
  auto end = std::make_unique<UpstreamEnd>(*service_, *this, *index);
  pending_ = end.get();
  connect_id_ = service_->connect(self_->loop(), *index, std::move(end));
}

void ClientEnd::upstream_open(UpstreamEnd& end, Connection& up, size_t index) {
  pending_ = nullptr;
  UpstreamStats& st = service_->stats().per_upstream[index];
  last_active_ = self_->now();
  join(*this, *self_, st.bytes_out, end, up, st.bytes_in, last_active_);
  self_->resume_reading();
  Duration idle = service_->options().idle_timeout;
  if (idle > Duration::zero())
    idle_timer_ = self_->start_timer(idle, Duration::zero(), [this](Connection& c) { on_idle_timer(c); });
}

void ClientEnd::upstream_failed(size_t index, const CloseInfo& info) {
  pending_ = nullptr;
  log_debug("proxy {}: upstream {} failed for client {}: {} ({})", service_->stats().listener,
            service_->upstreams()[index].text, self_ ? self_->peer_address() : Address(),
            info.error.message(), info.text);
  if (self_ && self_->is_open()) connect_next();
}

// Lazy: forwarding only stamps last_active_; the timer, when it fires, closes the pair or
// sleeps for what is left.
void ClientEnd::on_idle_timer(Connection& conn) {
  const Duration idle = service_->options().idle_timeout;
  const Duration quiet = conn.now() - last_active_;
  // Output still waiting for either peer is not idleness (the write timeout watches it).
  const bool busy = conn.pending_output() > 0 || (other_ && other_->pending_output() > 0);
  if (busy || quiet < idle) {
    conn.restart_timer(idle_timer_, busy ? idle : idle - quiet);
    return;
  }
  ++service_->stats().idle_closed;
  log_debug("proxy {}: client {} idle for {} ms; closing the pair", service_->stats().listener,
            conn.peer_address(), std::chrono::duration_cast<milliseconds>(quiet).count());
  if (other_) other_->close();
  conn.close();
}

void ClientEnd::on_close(Connection&, const CloseInfo& info) {
  if (UpstreamEnd* end = std::exchange(pending_, nullptr)) {
    end->forget_client();
    service_->cancel(connect_id_);  // destroys `end`, without a callback
  }
  leave(info);
}

// --- UpstreamEnd -------------------------------------------------------------------------

UpstreamEnd::~UpstreamEnd() {
  if (client_) client_->forget_pending();
}

void UpstreamEnd::on_open(Connection& up) {
  self_ = &up;
  opened_ = true;
  ++service_.stats().per_upstream[index_].connects;
  service_.pool().connected(index_);
  ClientEnd* client = std::exchange(client_, nullptr);
  if (!client) {  // the client went while we were connecting
    up.abort();
    return;
  }
  client->upstream_open(*this, up, index_);
}

void UpstreamEnd::on_close(Connection&, const CloseInfo& info) {
  if (!opened_) {  // connect_failed: the client tries the next upstream
    ++service_.stats().per_upstream[index_].failures;
    if (service_.pool().failed(index_, service_.now()))
      log_warn("proxy {}: upstream {} failed ({}); passed over for {} ms",
               service_.stats().listener, service_.upstreams()[index_].text, info.error.message(),
               std::chrono::duration_cast<milliseconds>(service_.options().retry_after).count());
    if (ClientEnd* client = std::exchange(client_, nullptr)) client->upstream_failed(index_, info);
    return;
  }
  leave(info);
}

}  // namespace netloop::proxy
