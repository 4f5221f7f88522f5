// netloop-demo's TCP echo over TLS: the same handler as --tcp-echo behind the TLS stage
// (no ALPN), with the --tls-cert certificates; every loop serves it.
#include "demo_protocol.hpp"
#include "demo_tls.hpp"
#include "echo/tcp_echo.hpp"

namespace netloop::demo {

const DemoProtocol& tls_echo_protocol() {
  static const DemoProtocol p{
      .name = "tls-echo",
      .flag = "--tls-echo",
      .listen_help = "TCP echo over TLS, with the --tls-cert certificates,\n"
                     "e.g. 127.0.0.1:7443",
      .tls = true,
      .setup = [](DemoRun& run, const std::vector<Address>& addresses) -> std::string {
        std::shared_ptr<TlsServerContext> tls;
        if (std::string why = make_tls_server(run, tls_echo_protocol(), tls); !why.empty())
          return why;
        for (const auto& a : addresses)
          tls_echo_protocol().add_stream(run, a, [tls](EventLoop&, size_t) {
            return StreamService{.factory = echo::tcp_echo_factory(), .tls = tls};
          });
        return {};
      },
      .detail = [](const DemoRun& run) { return tls_banner_detail(run, tls_echo_protocol()); },
  };
  return p;
}

}  // namespace netloop::demo
