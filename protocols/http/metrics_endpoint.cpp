// The /metrics handler: parse a request, answer it, keep the connection if asked.
#include "http/metrics_endpoint.hpp"

#include <memory>

#include "http/http_date.hpp"
#include "http/request_parser.hpp"
#include "http/status.hpp"

namespace netloop::http {
namespace {

class MetricsHandler final : public StreamHandler {
 public:
  explicit MetricsHandler(std::shared_ptr<std::function<std::string()>> render)
      : render_(std::move(render)) {}

  void on_data(Connection& conn, Buffer& input) override {
    while (!input.empty() && conn.is_open()) {
      ParseResult p = parser_.parse(input.view(), request_);
      if (p.status == ParseStatus::need_more) return;
      if (p.status == ParseStatus::error) {
        reply(conn, p.http_status, "text/plain; charset=utf-8", std::string(p.reason) + "\n",
              false, false);
        input.clear();
        conn.close();
        return;
      }
      parser_.reset();
      bool head = request_.method == Method::head;
      bool keep = request_.keep_alive && !(request_.has_content_length && request_.content_length);
      if (request_.method != Method::get && !head) {
        reply(conn, 405, "text/plain; charset=utf-8", "only GET and HEAD\n", false, keep);
      } else if (request_.path != "/metrics") {
        reply(conn, 404, "text/plain; charset=utf-8", "metrics are at /metrics\n", head, keep);
      } else {
        reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", (*render_)(), head, keep);
      }
      input.consume(p.consumed);
      if (!keep) {
        input.clear();
        conn.close();
      }
    }
  }

 private:
  void reply(Connection& conn, uint16_t status, std::string_view type, const std::string& body,
             bool head, bool keep_alive) {
    std::string out;
    append_response_head(out, status, date_.now(), keep_alive, request_.version_minor);
    out += "Content-Type: ";
    out += type;
    out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    if (status == 405) out += "Allow: GET, HEAD\r\n";
    out += "\r\n";
    if (!head) out += body;
    conn.send(out);
  }

  std::shared_ptr<std::function<std::string()>> render_;
  RequestParser parser_;
  Request request_;  // per connection: scrapes are rare, the memory is not worth sharing
  DateCache date_;
};

}  // namespace

StreamHandlerFactory metrics_factory(std::function<std::string()> render) {
  auto shared = std::make_shared<std::function<std::string()>>(std::move(render));
  return [shared] { return std::make_unique<MetricsHandler>(shared); };
}

}  // namespace netloop::http
