// UDP echo handler: the datagram goes back to its sender in the socket's next send batch.
#include "echo/udp_echo.hpp"

namespace netloop::echo {

void UdpEchoHandler::on_datagram(DatagramSocket& socket, std::span<const std::byte> data,
                                 const Address& from) {
  // A false return means the reply was dropped and counted (full send buffer): UDP
  // promises nothing more, and buffering without bound is worse.
  socket.send_to(from, data);
}

std::unique_ptr<DatagramHandler> make_udp_echo_handler() {
  return std::make_unique<UdpEchoHandler>();
}

}  // namespace netloop::echo
