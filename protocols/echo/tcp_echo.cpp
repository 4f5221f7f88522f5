// TCP echo handler: hands the input straight back to the connection.
#include "echo/tcp_echo.hpp"

namespace netloop::echo {

void TcpEchoHandler::on_data(Connection& conn, Buffer& input) {
  // send() writes at once and buffers only what the kernel refuses; past the high-water
  // mark the connection stops reading, so a peer that does not read cannot grow us.
  conn.send(input.data(), input.size());
  input.consume(input.size());
}

void TcpEchoHandler::on_peer_shutdown(Connection& conn, Buffer&) {
  // Not close(): the library's close after the peer's end of stream releases the socket
  // without sending our end of stream first, so a TLS peer's close_notify went
  // unanswered. shutdown_write() sends it once the output is flushed, then the
  // connection closes (both ends written).
  conn.shutdown_write();
}

StreamHandlerFactory tcp_echo_factory() {
  return [] { return std::make_unique<TcpEchoHandler>(); };
}

}  // namespace netloop::echo
