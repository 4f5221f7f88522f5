// The /metrics responder, and the cap on connections to it.
#include "http/metrics_endpoint.hpp"

#include <memory>

#include "http/http_handler.hpp"
#include "http/responder.hpp"

namespace netloop::http {
namespace {

class MetricsResponder final : public Responder {
 public:
  MetricsResponder(const HttpOptions& options, std::function<std::string()> render)
      : Responder(options), render_(std::move(render)) {}

  Reply respond(const Request& req, TimePoint, Buffer& out) override {
    bool head = req.method == Method::head;
    if (req.method != Method::get && !head) return fail(req.method == Method::unknown ? 501 : 405, {}, req, out);
    if (req.path != "/metrics") return fail(404, "metrics are at /metrics", req, out);
    std::string body = render_();
    write_head(200, req.keep_alive, req.version_minor, out);
    out.append("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: ");
    out.append(std::to_string(body.size()));
    out.append("\r\nCache-Control: no-store\r\n\r\n");
    if (!head) out.append(body);
    Reply r;
    r.status = 200;
    r.close = !req.keep_alive;
    return r;
  }

 private:
  std::function<std::string()> render_;
};

// Counts itself among the endpoint's open connections for as long as it lives (a handler
// lives as long as its connection).
class CountedHandler final : public StreamHandler {
 public:
  CountedHandler(std::unique_ptr<StreamHandler> inner, std::shared_ptr<size_t> open)
      : inner_(std::move(inner)), open_(std::move(open)) {
    ++*open_;
  }
  ~CountedHandler() override { --*open_; }

  void on_open(Connection& c) override { inner_->on_open(c); }
  void on_data(Connection& c, Buffer& in) override { inner_->on_data(c, in); }
  void on_peer_shutdown(Connection& c, Buffer& in) override { inner_->on_peer_shutdown(c, in); }
  void on_drain(Connection& c) override { inner_->on_drain(c); }
  void on_server_draining(Connection& c) override { inner_->on_server_draining(c); }
  void on_close(Connection& c, const CloseInfo& i) override { inner_->on_close(c, i); }

 private:
  std::unique_ptr<StreamHandler> inner_;
  std::shared_ptr<size_t> open_;
};

}  // namespace

StreamHandlerFactory metrics_factory(std::function<std::string()> render,
                                     const MetricsOptions& options) {
  HttpOptions http = options.http;
  http.access_log = false;
  std::shared_ptr<Responder> responder =
      std::make_shared<MetricsResponder>(http, std::move(render));
  auto open = std::make_shared<size_t>(0);
  size_t cap = options.max_connections;
  StreamHandlerFactory handlers = responder->factory();
  return [responder, open, cap, handlers]() -> std::unique_ptr<StreamHandler> {
    if (*open >= cap) return make_refusal_handler(responder);
    return std::make_unique<CountedHandler>(handlers(), open);
  };
}

}  // namespace netloop::http
