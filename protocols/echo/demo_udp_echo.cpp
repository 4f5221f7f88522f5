// netloop-demo's UDP echo (RFC 862) and the options of its sockets.
#include "demo_protocol.hpp"
#include "demo_options.hpp"
#include "echo/udp_echo.hpp"
#include "netloop/byte_size.hpp"

namespace netloop::demo {

const DemoProtocol& udp_echo_protocol() {
  static const DemoProtocol p{
      .name = "udp-echo",
      .flag = "--udp-echo",
      .listen_help = "UDP echo (RFC 862): each datagram goes back whole to its sender",
      .default_listener = Address::ipv4_loopback(7007),
      .datagram = true,
      .options_title = "UDP",
      .options =
          {
              {"--udp-batch", "N", "a count",
               "datagrams per recvmmsg/sendmmsg call (default 32, 1-1024); each\n"
               "socket keeps N x --udp-max-datagram bytes of receive room",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 auto n = parse_byte_size(v);
                 if (!n || *n == 0 || *n > 1024 || v.back() < '0' || v.back() > '9')
                   return "--udp-batch " + v + ": expected a count from 1 to 1024";
                 o.udp.batch = *n;
                 return {};
               }},
              {"--udp-max-datagram", "BYTES", "a size in bytes",
               "largest datagram received whole; larger ones are dropped and\n"
               "counted, never echoed truncated (default 65535)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 auto n = parse_byte_size(v);
                 if (!n || *n == 0 || *n > 65535)
                   return "--udp-max-datagram " + v + ": expected a size from 1 to 65535";
                 o.udp.max_datagram = *n;
                 return {};
               }},
          },
      .setup = [](DemoRun& run, const std::vector<Address>& addresses) -> std::string {
        for (const auto& a : addresses)
          udp_echo_protocol().add_datagram(run, a, [](EventLoop&, size_t) {
            return echo::make_udp_echo_handler();
          });
        return {};
      },
  };
  return p;
}

}  // namespace netloop::demo
