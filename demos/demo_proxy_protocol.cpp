// netloop-demo's PROXY protocol options: every service listener (not the metrics endpoint,
// which is scraped directly) expects a header from a trusted load balancer.
#include "demo_proxy_protocol.hpp"

#include <memory>

#include "demo_options.hpp"
#include "netloop/proxy_protocol_options.hpp"

namespace netloop::demo {

OptionGroup proxy_protocol_option_group() {
  return {"PROXY protocol (behind a load balancer)",
          {
              {"--proxy-protocol", "", "",
               "every listener but --metrics expects a PROXY protocol header\n"
               "(v1 or v2) before anything else, TLS included; its client\n"
               "address is the one logged. A connection without a valid header,\n"
               "or from an untrusted peer, is closed",
               [](DemoOptions& o, const std::string&) -> std::string {
                 o.proxy_protocol_wanted = true;
                 return {};
               }},
              {"--proxy-trusted", "CIDR[,CIDR...]", "a network list, e.g. 10.0.0.0/8",
               "peers allowed to send a header, e.g. 10.0.0.0/8,fd00::/8;\n"
               "others are closed unread (default 127.0.0.0/8,::1/128)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 std::string why;
                 auto list = Cidr::parse_list(v, &why);
                 if (!list) return "--proxy-trusted " + v + ": " + why;
                 o.proxy_trusted = std::move(*list);
                 o.proxy_trusted_given = true;
                 return {};
               }},
              {"--proxy-header-timeout", "DURATION", "a duration, e.g. 5s",
               "from the accept to a whole PROXY header, else the\n"
               "connection is closed (default 5s; also 2.5, 500ms). On Linux\n"
               "the accept itself waits about as long for the peer's first bytes",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 o.proxy_header_timeout_given = true;
                 return parse_duration("--proxy-header-timeout", v, o.proxy_header_timeout);
               }},
          }};
}

std::string check_proxy_protocol_options(DemoOptions& o) {
  if (o.proxy_trusted_given && !o.proxy_protocol_wanted)
    return "--proxy-trusted applies to --proxy-protocol: add it, or drop --proxy-trusted";
  if (o.proxy_header_timeout_given && !o.proxy_protocol_wanted)
    return "--proxy-header-timeout applies to --proxy-protocol: add it, or drop "
           "--proxy-header-timeout";
  if (!o.proxy_protocol_wanted) return {};
  auto options = std::make_shared<ProxyProtocolOptions>();
  if (o.proxy_trusted_given) options->trusted = o.proxy_trusted;
  options->header_timeout = o.proxy_header_timeout;
  o.proxy_protocol = std::move(options);
  return {};
}

Server::StreamSetup expect_proxy_headers(const DemoRun& run, const DemoProtocol& protocol,
                                         Server::StreamSetup setup) {
  auto options = run.options.proxy_protocol;
  if (!options || !protocol.is_service) return setup;
  return [setup = std::move(setup), options](EventLoop& loop, size_t i) {
    StreamService service = setup(loop, i);
    service.proxy_protocol = options;
    return service;
  };
}

}  // namespace netloop::demo
