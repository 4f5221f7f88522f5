// TcpConnection's PROXY protocol stage: the header read before TLS and on_open, and the
// peer address it gives the connection. The reading itself is ProxyStage's.
#include "netloop/tcp_connection.hpp"

#include <string>

#include "netloop/log.hpp"
#include "netloop/proxy_protocol.hpp"
#include "proxy_stage.hpp"

namespace netloop {

void TcpConnection::use_proxy_protocol(std::unique_ptr<ProxyStage> stage) noexcept {
  proxy_ = std::move(stage);
}

const Address& TcpConnection::peer_address() const noexcept {
  if (proxy_)
    if (const Address* client = proxy_->client()) return *client;
  return StreamConnection::peer_address();
}

const proxy_protocol::Header* TcpConnection::proxy_header() const noexcept {
  return proxy_ ? proxy_->header() : nullptr;
}

void TcpConnection::start_proxy_stage() {
  // An accepted connection that fails here (or is closed by a drain) never opened: its
  // handler is not told, as for a failed TLS handshake.
  close_quietly_until_begun();
  // A listener that defers its accepts hands over connections whose first bytes have come:
  // the header is read now, and usually whole, so no timer is needed. Otherwise a
  // connection is accepted once its handshake is done, usually before the header arrives
  // (HAProxy connects, then sends), so a read here would mostly find nothing (one EAGAIN
  // per connection): the watcher waits for input, and a header already there makes it
  // ready at once (level-triggered).
  if (proxy_->header_comes_with_accept()) {
    drive_proxy_stage();
    if (state() != State::open || !proxy_->running()) return;  // opened, or failed
  }
  proxy_->arm_timeout([this] {
    if (state() != State::open || !proxy_->running()) return;
    proxy_->timed_out(StreamConnection::peer_address(), local_address());
    proxy_stage_failed("no PROXY header in time");
  });
}

void TcpConnection::on_proxy_io(uint32_t ready) {
  if (state() != State::open || !proxy_->running()) return;
  if ((ready & ready::error) && watcher_.error()) {  // the poller refused an interest change
    proxy_->abandon();
    proxy_stage_failed("the socket cannot be watched");
    return;
  }
  drive_proxy_stage();
}

void TcpConnection::drive_proxy_stage() {
  const bool keep_rest = !tls_;  // OpenSSL reads the socket itself: leave it the bytes
  switch (proxy_->advance(fd_.get(), StreamConnection::peer_address(), local_address(),
                          keep_rest)) {
    case ProxyStage::Step::want_read:
      return;  // the watcher already waits for input
    case ProxyStage::Step::failed:
      proxy_stage_failed("invalid PROXY header");
      return;
    case ProxyStage::Step::done:
      break;
  }
  // Closed while reading the header (a drain): it never opens.
  if (state() != State::open) return;
  // The owner counts clients by the header's address (per-client limits): it may turn
  // the connection down, or into a refusal, now that it knows who this is.
  if (!admitted_by_owner()) {
    watcher_.set_interest(Interest::none);
    fail_unstarted({CloseReason::shutdown, {}, "refused: per-client limit"}, false);
    return;
  }
  // TLS: the bytes after the header are still in the socket. Plain: bytes read with the
  // header are handed on once the connection reads (want_events queues them).
  open_transport();
}

// Bytes read with the header are no readiness the poller can announce: they are handed
// to the connection after this dispatch batch, as if the socket had just become readable.
void TcpConnection::queue_rest_read() {
  if (rest_read_queued_) return;
  rest_read_queued_ = true;
  loop().defer([this] {
    rest_read_queued_ = false;
    if (state() == State::closing || state() == State::closed || !conn_reads_) return;
    if (proxy_->has_rest()) on_readable();
  });
}

void TcpConnection::proxy_stage_failed(std::string_view why) {
  watcher_.set_interest(Interest::none);
  fail_unstarted({CloseReason::error, make_error(EPROTO),
                  std::string(why) + " from " + StreamConnection::peer_address().to_string()},
                 false);
}

}  // namespace netloop
