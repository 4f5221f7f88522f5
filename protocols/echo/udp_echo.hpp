// UDP echo (RFC 862): every datagram goes back whole to its sender.
#pragma once

#include <memory>

#include "netloop/datagram.hpp"

namespace netloop::echo {

class UdpEchoHandler final : public DatagramHandler {
 public:
  void on_datagram(DatagramSocket& socket, std::span<const std::byte> data,
                   const Address& from) override;
};

std::unique_ptr<DatagramHandler> make_udp_echo_handler();

}  // namespace netloop::echo
