// HttpHandler: one HTTP/1.x connection: framing (parse, discard bodies, pipelining in
// order), keep-alive, header-read and idle timeouts, and backpressure. What to answer is
// the responder's business.
#pragma once

#include <memory>

#include "http/responder.hpp"
#include "http/request_parser.hpp"
#include "netloop/protocol.hpp"

namespace netloop::http {

class HttpHandler final : public StreamHandler {
 public:
  explicit HttpHandler(std::shared_ptr<Responder> responder);

  void on_open(Connection& conn) override;
  void on_data(Connection& conn, Buffer& input) override;
  void on_peer_shutdown(Connection& conn, Buffer& input) override;
  void on_server_draining(Connection& conn) override;
  void on_drain(Connection& conn) override;
  void on_close(Connection& conn, const CloseInfo& info) override;

 private:
  enum class Phase : uint8_t {
    idle,     // between requests (or before the first): the idle timeout runs
    request,  // part of a request has arrived: the header timeout runs from its first byte
    closing,  // the last response is queued; nothing more is read
  };

  void on_timer(Connection& conn);
  void set_deadline(Connection& conn, TimePoint deadline);
  void flush(Connection& conn);
  uint32_t rate_limit_wait(Connection& conn, TimePoint now);
  void reject(uint16_t status, std::string_view reason);
  void send_reply(Connection& conn, Responder::Reply& reply);

  std::shared_ptr<Responder> responder_;
  RequestParser parser_;
  uint64_t body_left_ = 0;    // request body bytes still to read and discard
  TimePoint deadline_{};      // when the current phase times out
  TimePoint timer_at_{};      // when the timer is set to fire
  TimerId timer_;
  bool timer_fired_ = false;  // the timer is not pending: set_deadline re-arms it
  Phase phase_ = Phase::idle;
  bool peer_done_ = false;    // the peer sent its end of stream
  bool draining_ = false;     // the server is draining: close after the next response
  bool input_waiting_ = false;  // requests left in the input while the output was full
};

// Handlers for connections past the server's limit: a 503 and close, without reading.
StreamHandlerFactory refusal_factory(std::shared_ptr<Responder> responder);
std::unique_ptr<StreamHandler> make_refusal_handler(std::shared_ptr<Responder> responder);

}  // namespace netloop::http
