// The list of protocols netloop-demo serves. Adding one is its folder (with the file that
// describes it to the demo, a DemoProtocol, listed in demo_protocol_sources by the
// folder's meson.build) and one line here.
#include "demo_protocol.hpp"

namespace netloop::demo {

const DemoProtocol& tcp_echo_protocol();
const DemoProtocol& tls_echo_protocol();
const DemoProtocol& udp_echo_protocol();
const DemoProtocol& http_protocol();
const DemoProtocol& https_protocol();
const DemoProtocol& chat_protocol();
const DemoProtocol& kv_protocol();
const DemoProtocol& tcp_proxy_protocol();
const DemoProtocol& tls_proxy_protocol();
const DemoProtocol& metrics_protocol();

const std::vector<const DemoProtocol*>& demo_protocols() {
  static const std::vector<const DemoProtocol*> all = {
      &tcp_echo_protocol(),
      &tls_echo_protocol(),
      &udp_echo_protocol(),
      &http_protocol(),
      &https_protocol(),
      &chat_protocol(),
      &kv_protocol(),
      &tcp_proxy_protocol(),
      &tls_proxy_protocol(),
      &metrics_protocol(),
  };
  return all;
}

const DemoProtocol* find_protocol(std::string_view name) {
  for (const DemoProtocol* p : demo_protocols())
    if (p->name == name) return p;
  return nullptr;
}

}  // namespace netloop::demo
