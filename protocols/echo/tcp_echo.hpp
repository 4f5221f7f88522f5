// TCP echo (RFC 862): every byte received is sent back, in order.
#pragma once

#include <memory>

#include "netloop/protocol.hpp"

namespace netloop::echo {

class TcpEchoHandler final : public StreamHandler {
 public:
  void on_data(Connection& conn, Buffer& input) override;
  // RFC 862 says nothing of half-close; we echo all that came, then close.
};

StreamHandlerFactory tcp_echo_factory();

}  // namespace netloop::echo
