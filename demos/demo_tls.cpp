// TLS for netloop-demo's listeners: the certificate options, one server context per TLS
// protocol, their counters and the SIGHUP reload.
#include "demo_tls.hpp"

#include <csignal>

#include "demo_options.hpp"
#include "netloop/log.hpp"

namespace netloop::demo {
namespace {

std::string tls_listener_flags() {
  std::string out;
  for (const DemoProtocol* p : demo_protocols())
    if (p->tls) out += (out.empty() ? "" : ", ") + std::string(p->flag);
  return out;
}

}  // namespace

std::string one_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

OptionGroup tls_option_group() {
  return {"TLS (for --https, --tls-echo, --tls-proxy)",
          {
              {"--tls-cert", "FILE", "a certificate file",
               "certificate chain (PEM, leaf first), followed by its --tls-key;\n"
               "repeatable: the first pair is the default, the others are chosen\n"
               "by the name the client asks for (SNI)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (v.empty()) return "--tls-cert needs a certificate file";
                 if (!o.tls.certificates.empty() && o.tls.certificates.back().private_key.empty())
                   return "--tls-cert " + o.tls.certificates.back().certificate_chain +
                          " has no --tls-key: give each certificate's key after it";
                 o.tls.given = true;
                 o.tls.certificates.push_back({v, ""});
                 return {};
               }},
              {"--tls-key", "FILE", "a private key file",
               "the private key (PEM, unencrypted) of the --tls-cert before it",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (v.empty()) return "--tls-key needs a private key file";
                 if (o.tls.certificates.empty() || !o.tls.certificates.back().private_key.empty())
                   return "--tls-key " + v + ": no --tls-cert before it to pair it with";
                 o.tls.certificates.back().private_key = v;
                 return {};
               }},
              {"--tls-handshake-timeout", "DURATION", "a duration, e.g. 10s",
               "from the accept to a finished TLS\n"
               "handshake, else the connection is closed\n"
               "(default 10s; also 2.5, 500ms)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 o.tls.given = true;
                 return parse_duration("--tls-handshake-timeout", v, o.tls.handshake_timeout);
               }},
          }};
}

std::string check_tls_options(const DemoOptions& o) {
  if (!o.tls.certificates.empty() && o.tls.certificates.back().private_key.empty())
    return "--tls-cert " + o.tls.certificates.back().certificate_chain +
           " has no --tls-key: add --tls-key FILE after it";
  bool any_tls = false;
  for (const auto& l : o.listeners) {
    if (!l.protocol->tls) continue;
    any_tls = true;
    if (o.tls.certificates.empty())
      return std::string(l.protocol->flag) +
             " needs a certificate: add --tls-cert FILE --tls-key FILE";
  }
  if (o.tls.given && !any_tls)
    return "the --tls-* options apply to TLS listeners: add one of " + tls_listener_flags();
  return {};
}

std::string make_tls_server(DemoRun& run, const DemoProtocol& protocol,
                            std::shared_ptr<TlsServerContext>& out) {
  TlsServerOptions so;
  so.certificates = run.options.tls.certificates;
  so.alpn = protocol.alpn;
  so.handshake_timeout = run.options.tls.handshake_timeout;
  std::string why;
  auto made = TlsServerContext::create(so, &why);
  if (!made) {
    if (why.empty()) why = made.error().message();
    return std::string(protocol.flag) + ": " + one_line(why);
  }
  out = *made;
  run.tls_servers.emplace_back(std::string(protocol.name), out);
  run.metrics.tls.push_back({std::string(protocol.name), [ctx = out] { return ctx->stats(); }});
  return {};
}

std::string tls_banner_detail(const DemoRun& run, const DemoProtocol& protocol) {
  for (const auto& [name, ctx] : run.tls_servers) {
    if (name != protocol.name) continue;
    std::string out = ", TLS " + std::string(tls_library_version());
    out += ctx->ktls_possible() ? ", kTLS possible" : ", no kTLS";
    if (!protocol.alpn.empty()) out += ", ALPN " + protocol.alpn.front();
    return out;
  }
  return {};
}

std::string handle_tls_reload(Server& server, DemoRun& run) {
  if (run.tls_servers.empty()) return {};
  bool ktls = false;
  for (const auto& [name, ctx] : run.tls_servers) ktls = ktls || ctx->ktls_possible();
  log_info("TLS: {}; kTLS {}; {} certificate(s); SIGHUP reloads them", tls_library_version(),
           ktls ? "possible (the kernel has the tls module)" : "not possible here",
           run.options.tls.certificates.size());
  auto contexts = run.tls_servers;
  auto r = server.loop(0).on_signal(SIGHUP, [contexts] {
    for (const auto& [name, ctx] : contexts) {
      std::string why;
      if (auto done = ctx->reload(&why); !done)
        log_error("SIGHUP: {} certificates not reloaded, the old ones stay in use: {}", name,
                  one_line(why.empty() ? done.error().message() : why));
      else
        log_info("SIGHUP: {} certificates reloaded; new connections use them", name);
    }
  });
  if (!r) return "cannot handle SIGHUP: " + r.error().message();
  return {};
}

}  // namespace netloop::demo
