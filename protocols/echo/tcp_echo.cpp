// TCP echo handler: hands the input straight back to the connection.
#include "echo/tcp_echo.hpp"

namespace netloop::echo {

void TcpEchoHandler::on_data(Connection& conn, Buffer& input) {
  // send() writes at once and buffers only what the kernel refuses; past the high-water
  // mark the connection stops reading, so a peer that does not read cannot grow us.
  conn.send(input.data(), input.size());
  input.consume(input.size());
}

StreamHandlerFactory tcp_echo_factory() {
  return [] { return std::make_unique<TcpEchoHandler>(); };
}

}  // namespace netloop::echo
