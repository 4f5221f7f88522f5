// Status lines (the reason phrase for each status code the responder sends) and the
// head every response starts with.
#pragma once

#include <cstdint>
#include <string_view>

namespace netloop::http {

// "HTTP/1.1 404 Not Found\r\n" for a code we send; a generic line otherwise.
std::string_view status_line(uint16_t status) noexcept;

// The status line, Server, Date and what becomes of the connection ("Connection: close",
// or for HTTP/1.0 "Connection: keep-alive"), appended to a Buffer or a std::string. The
// fields particular to the response and the empty line follow.
template <class Out>
void append_response_head(Out& out, uint16_t status, std::string_view date, bool keep_alive,
                          uint8_t version_minor) {
  out.append(status_line(status));
  out.append(std::string_view("Server: netloop\r\nDate: "));
  out.append(date);
  out.append(std::string_view("\r\n"));
  if (!keep_alive) out.append(std::string_view("Connection: close\r\n"));
  else if (version_minor == 0) out.append(std::string_view("Connection: keep-alive\r\n"));
}

}  // namespace netloop::http
