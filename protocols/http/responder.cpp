// Responder: error responses, response heads and the handler factory shared by every
// HTTP service.
#include "http/responder.hpp"

#include <charconv>

#include "http/http_handler.hpp"
#include "http/status.hpp"

namespace netloop::http {

uint64_t Responder::Reply::body_bytes() const noexcept {
  uint64_t n = file_length;
  if (multipart) {
    n += multipart->tail.size();
    for (const auto& p : multipart->parts) n += p.text.size() + p.length;
  }
  return n;
}

Responder::Responder(const HttpOptions& options) : options_(options), staging_(16 * 1024) {}

StreamHandlerFactory Responder::factory() {
  std::shared_ptr<Responder> self = shared_from_this();
  return [self] { return std::make_unique<HttpHandler>(self); };
}

void Responder::write_head(uint16_t status, bool keep_alive, uint8_t version_minor, Buffer& out) {
  ++stats_.responses[status / 100 < 6 ? status / 100 : 5];
  append_response_head(out, status, date_.now(), keep_alive, version_minor);
}

void Responder::write_error(uint16_t status, std::string_view detail, bool head,
                            bool keep_alive, uint8_t version_minor, Buffer& out,
                            std::string_view extra_fields) {
  write_head(status, keep_alive, version_minor, out);
  out.append(extra_fields);
  std::string_view line = status_line(status);  // "HTTP/1.1 404 Not Found\r\n"
  std::string_view text = line.substr(9, line.size() - 11);
  if (status == 405) out.append("Allow: GET, HEAD\r\n");
  out.append("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  size_t length = text.size() + 1 + (detail.empty() ? 0 : detail.size() + 2);
  char num[24];
  auto [end, ec] = std::to_chars(num, num + sizeof num, length);
  out.append(num, size_t(end - num));
  out.append("\r\n\r\n");
  if (head) return;
  out.append(text);
  if (!detail.empty()) {
    out.append(": ");
    out.append(detail);
  }
  out.append("\n");
}

Responder::Reply Responder::too_many_requests(const Request& req, uint32_t seconds,
                                              Buffer& out) {
  ++stats_.rate_limited;
  char field[40] = "Retry-After: ";
  auto [end, ec] = std::to_chars(field + 13, field + sizeof field - 2, seconds);
  *end++ = '\r';
  *end++ = '\n';
  return fail(429, "request rate limit; retry later", req, out,
              std::string_view(field, size_t(end - field)));
}

Responder::Reply Responder::fail(uint16_t status, std::string_view detail, const Request& req,
                                 Buffer& out, std::string_view extra_fields) {
  write_error(status, detail, req.method == Method::head, req.keep_alive, req.version_minor, out,
              extra_fields);
  Reply r;
  r.status = status;
  r.close = !req.keep_alive;
  return r;
}

}  // namespace netloop::http
