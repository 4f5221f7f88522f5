// UDP echo handler: the datagram goes back to its sender in the socket's next send batch.
#include "echo/udp_echo.hpp"

namespace netloop::echo {

void UdpEchoHandler::on_datagram(DatagramSocket& socket, std::span<const std::byte> data,
                                 const Address& from) {
  // A reply the kernel has no room for is dropped and counted by the socket: UDP promises
  // nothing more, and buffering without bound is worse. An echo only answers, so it has
  // nothing to hold back while output_full(), and no use for on_drain; on_open and
  // on_close have nothing to set up or release.
  socket.send_to(from, data);
}

std::unique_ptr<DatagramHandler> make_udp_echo_handler() {
  return std::make_unique<UdpEchoHandler>();
}

}  // namespace netloop::echo
