// netloop-demo's TCP echo (RFC 862): every loop serves it.
#include "demo_protocol.hpp"
#include "echo/tcp_echo.hpp"

namespace netloop::demo {

const DemoProtocol& tcp_echo_protocol() {
  static const DemoProtocol p{
      .name = "tcp-echo",
      .flag = "--tcp-echo",
      .listen_help = "TCP echo (RFC 862), e.g. 127.0.0.1:7007 or [::1]:7007",
      .default_listener = Address::ipv4_loopback(7007),
      .setup = [](DemoRun& run, const std::vector<Address>& addresses) -> std::string {
        for (const auto& a : addresses)
          tcp_echo_protocol().add_stream(run, a, [](EventLoop&, size_t) {
            return StreamService{.factory = echo::tcp_echo_factory()};
          });
        return {};
      },
  };
  return p;
}

}  // namespace netloop::demo
