// The status-line table.
#include "http/status.hpp"

namespace netloop::http {

std::string_view status_line(uint16_t status) noexcept {
  switch (status) {
    case 200: return "HTTP/1.1 200 OK\r\n";
    case 301: return "HTTP/1.1 301 Moved Permanently\r\n";
    case 206: return "HTTP/1.1 206 Partial Content\r\n";
    case 304: return "HTTP/1.1 304 Not Modified\r\n";
    case 400: return "HTTP/1.1 400 Bad Request\r\n";
    case 403: return "HTTP/1.1 403 Forbidden\r\n";
    case 404: return "HTTP/1.1 404 Not Found\r\n";
    case 405: return "HTTP/1.1 405 Method Not Allowed\r\n";
    case 408: return "HTTP/1.1 408 Request Timeout\r\n";
    case 413: return "HTTP/1.1 413 Content Too Large\r\n";
    case 412: return "HTTP/1.1 412 Precondition Failed\r\n";
    case 414: return "HTTP/1.1 414 URI Too Long\r\n";
    case 416: return "HTTP/1.1 416 Range Not Satisfiable\r\n";
    case 429: return "HTTP/1.1 429 Too Many Requests\r\n";
    case 431: return "HTTP/1.1 431 Request Header Fields Too Large\r\n";
    case 500: return "HTTP/1.1 500 Internal Server Error\r\n";
    case 501: return "HTTP/1.1 501 Not Implemented\r\n";
    case 503: return "HTTP/1.1 503 Service Unavailable\r\n";
    case 505: return "HTTP/1.1 505 HTTP Version Not Supported\r\n";
  }
  return status >= 500 ? "HTTP/1.1 500 Internal Server Error\r\n" : "HTTP/1.1 400 Bad Request\r\n";
}

}  // namespace netloop::http
