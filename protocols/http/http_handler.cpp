// HttpHandler: the per-connection state machine.
#include "http/http_handler.hpp"

#include <algorithm>

#include "netloop/log.hpp"

namespace netloop::http {
namespace {

// Responses assembled in one on_data call go out in one send, up to this much.
constexpr size_t kFlushThreshold = 64 * 1024;

}  // namespace

HttpHandler::HttpHandler(std::shared_ptr<Responder> responder)
    : responder_(std::move(responder)), parser_(responder_->options().limits) {}

void HttpHandler::on_open(Connection& conn) {
  // The first request must arrive within the header timeout; later ones within the idle
  // timeout of the response before them.
  deadline_ = timer_at_ = conn.now() + responder_->options().header_timeout;
  timer_ = conn.start_timer(responder_->options().header_timeout, Duration::zero(),
                            [this](Connection& c) { on_timer(c); });
}

// One timer, and lazy: phases move the deadline with a store, and the timer is only
// moved when the deadline comes earlier than it is set for (or it has fired). When it
// fires early it re-arms itself for the rest, so a keep-alive request costs no timer-heap
// work at all.
void HttpHandler::set_deadline(Connection& conn, TimePoint deadline) {
  deadline_ = deadline;
  if (deadline < timer_at_ || timer_fired_) {
    timer_at_ = deadline;
    timer_fired_ = false;
    conn.restart_timer(timer_, deadline - conn.now());
  }
}

void HttpHandler::on_timer(Connection& conn) {
  timer_fired_ = true;
  if (phase_ == Phase::closing || !conn.is_open()) return;
  TimePoint now = conn.now();
  if (now < deadline_ || conn.pending_output() > 0) {
    // Not yet, or the peer is reading a response (the connection's write timeout guards
    // that): look again later.
    // Draining, a response still going out is looked at again after the grace, not the
    // whole keep-alive timeout: the connection goes once it is out (and the grace over).
    const HttpOptions& o = responder_->options();
    Duration again = o.keepalive_timeout;
    if (draining_)
      again = std::max<Duration>(std::min(o.drain_idle_grace, again), milliseconds(50));
    TimePoint next = now < deadline_ ? deadline_ : now + again;
    timer_at_ = next;
    timer_fired_ = false;
    conn.restart_timer(timer_, next - now);
    return;
  }
  if (!(draining_ && phase_ == Phase::idle)) ++responder_->stats().timeouts;  // not a grace's end
  if (phase_ == Phase::request) {
    log_debug("http {}: request not received within the header timeout; 408",
              conn.peer_address());
    responder_->staging().clear();
    reject(408, "request not received in time");
    flush(conn);
  }
  phase_ = Phase::closing;
  conn.close();
}

// An error that ends the connection: the request cannot be framed, so nothing after it
// can be trusted to start a request.
void HttpHandler::reject(uint16_t status, std::string_view reason) {
  responder_->write_error(status, reason, /*head=*/false, /*keep_alive=*/false, 1,
                          responder_->staging());
  phase_ = Phase::closing;
}

// HttpOptions::rate_limiter: 0 when the request may go on, else the seconds its client
// must wait (a 429). Counted per request (pipelined ones too), by the connection's peer
// as it is now (behind a PROXY header, the client it names).
uint32_t HttpHandler::rate_limit_wait(Connection& conn, TimePoint now) {
  RateLimiter* limiter = responder_->options().rate_limiter.get();
  if (!limiter) return 0;
  RateDecision d = limiter->take(limiter->key_of(conn.peer_address()), now);
  return d.allowed ? 0 : d.retry_after_seconds();
}

void HttpHandler::flush(Connection& conn) {
  Buffer& out = responder_->staging();
  if (!out.empty()) conn.send(out.view());
  out.clear();
}

// The parts of a reply that come from disk, after what is staged: one range, or the parts
// of a multipart/byteranges body, all sent from the reply's one shared descriptor.
void HttpHandler::send_reply(Connection& conn, Responder::Reply& reply) {
  Buffer& out = responder_->staging();
  if (!reply.multipart) {
    // The head (and any responses before it) goes out with the file's first bytes.
    conn.send_file(out.view(), std::move(reply.file), reply.file_offset, reply.file_length);
    out.clear();
    return;
  }
  flush(conn);
  for (auto& part : reply.multipart->parts) {
    if (part.length == 0) {  // read in: its bytes are in its text
      conn.send(part.text);
      continue;
    }
    conn.send_file(part.text, reply.file, part.offset, part.length);
  }
  conn.send(reply.multipart->tail);
}

void HttpHandler::on_data(Connection& conn, Buffer& input) {
  if (phase_ == Phase::closing) {
    input.clear();  // after the last response: nothing more is read
    return;
  }
  Responder& r = *responder_;
  Buffer& out = r.staging();
  Request& req = r.request();
  out.clear();
  TimePoint now = conn.now();

  input_waiting_ = false;
  while (phase_ != Phase::closing) {
    if (body_left_ > 0) {  // the rest of a body we do not want: read past it
      size_t n = size_t(std::min<uint64_t>(body_left_, input.size()));
      input.consume(n);
      body_left_ -= n;
      if (body_left_ > 0) break;
    }
    if (input.empty()) break;
    if (conn.output_full()) {  // on_data is called again once the peer catches up
      input_waiting_ = true;
      break;
    }

    ParseResult p = parser_.parse(input.view(), req);
    if (p.status == ParseStatus::need_more) break;
    if (p.status == ParseStatus::error) {
      ++r.stats().bad_requests;
      log_debug("http {}: {} {}", conn.peer_address(), p.http_status, p.reason);
      reject(p.http_status, p.reason);
      input.clear();
      break;
    }
    ++r.stats().requests;
    parser_.reset();
    phase_ = Phase::idle;
    if (draining_) req.keep_alive = false;  // this one is answered, then the connection goes
    bool close_after = !req.keep_alive;
    // A client that asked "Expect: 100-continue" may never send the body once it sees our
    // final answer; without the body the next bytes would be misread as a request.
    if (req.has_content_length && req.content_length > 0 && req.find("expect")) {
      close_after = true;
      req.keep_alive = false;
    }
    if (req.has_content_length && req.content_length > r.options().max_discarded_body) {
      r.write_error(413, "request bodies are not accepted", req.method == Method::head, false,
                    req.version_minor, out);
      input.clear();
      phase_ = Phase::closing;
      break;
    }
    size_t out_before = out.size();
    uint32_t wait = rate_limit_wait(conn, now);
    Responder::Reply reply = wait ? r.too_many_requests(req, wait, out) : r.respond(req, now, out);
    if (r.options().access_log) {
      log_info("{} \"{} {} HTTP/1.{}\" {} {}", conn.peer_address(), req.method_name,
               req.target, req.version_minor, reply.status,
               out.size() - out_before + reply.body_bytes());
    }
    // Views into `input` (the request) are not used past this point.
    input.consume(p.consumed);
    body_left_ = req.has_content_length ? req.content_length : 0;
    if (reply.file) {
      send_reply(conn, reply);
    } else if (out.size() >= kFlushThreshold) {
      flush(conn);
    }
    if (close_after || reply.close) phase_ = Phase::closing;
  }
  flush(conn);

  if (phase_ == Phase::closing) {
    conn.close();
    return;
  }
  bool partial = body_left_ > 0 || parser_.in_progress();
  if (partial) {
    if (phase_ == Phase::idle) {
      phase_ = Phase::request;
      set_deadline(conn, now + r.options().header_timeout);
    }
  } else if (input.empty()) {
    phase_ = Phase::idle;
    set_deadline(conn, now + r.options().keepalive_timeout);
  }
  if (peer_done_ && !conn.output_full()) conn.close();
}

void HttpHandler::on_peer_shutdown(Connection& conn, Buffer&) {
  peer_done_ = true;
  // Requests still waiting behind a full output are answered first (on_data is offered
  // them again once it drains); a partial request at end of stream is simply dropped.
  if (!conn.output_full()) {
    phase_ = Phase::closing;
    conn.close();
  }
}

// Output the peer had pushed back is all written. If the peer has also ended its stream,
// nothing more will come: close (leftover input, if any, is offered again first).
void HttpHandler::on_drain(Connection& conn) {
  if (peer_done_ && !input_waiting_ && phase_ != Phase::closing) {
    phase_ = Phase::closing;
    conn.close();
  }
}

void HttpHandler::on_server_draining(Connection& conn) {
  // The request in progress, or the next one, is answered with Connection: close, and
  // the connection goes after it. Idle (between requests, nothing waiting), it is closed
  // after a short grace without one: a client that had just sent a request sees it
  // answered rather than its connection cut.
  if (phase_ == Phase::closing) return;
  draining_ = true;
  bool busy = input_waiting_ || body_left_ > 0 || parser_.in_progress();
  if (!busy) {
    const HttpOptions& o = responder_->options();
    set_deadline(conn, conn.now() + std::min(o.drain_idle_grace, o.keepalive_timeout));
  }
}

void HttpHandler::on_close(Connection&, const CloseInfo&) { timer_ = {}; }

namespace {

class RefusalHandler final : public StreamHandler {
 public:
  explicit RefusalHandler(std::shared_ptr<Responder> r) : responder_(std::move(r)) {}
  void on_open(Connection& conn) override {
    ++responder_->stats().refused;
    Buffer out;  // the refusal path: an allocation is fine here
    responder_->write_error(503, "too many connections; try again later", false, false, 1, out);
    conn.send(out.view());
    conn.close();
  }
  void on_data(Connection&, Buffer& input) override { input.clear(); }

 private:
  std::shared_ptr<Responder> responder_;
};

}  // namespace

std::unique_ptr<StreamHandler> make_refusal_handler(std::shared_ptr<Responder> responder) {
  return std::make_unique<RefusalHandler>(std::move(responder));
}

StreamHandlerFactory refusal_factory(std::shared_ptr<Responder> responder) {
  return [responder] { return make_refusal_handler(responder); };
}

}  // namespace netloop::http
