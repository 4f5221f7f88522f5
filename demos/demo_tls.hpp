// netloop-demo's TLS: the certificate options (--tls-cert, --tls-key,
// --tls-handshake-timeout) as a table, the check of them against the TLS listeners, the
// server context a TLS protocol's listeners share, and the reload on SIGHUP.
#pragma once

#include <memory>
#include <string>

#include "demo_protocol.hpp"
#include "option_table.hpp"

namespace netloop::demo {

// The "TLS" group of --help.
OptionGroup tls_option_group();

// After parsing: what is wrong with the TLS options as a whole ("" = nothing): a
// certificate without its key, a TLS listener without a certificate, certificates and
// no TLS listener.
std::string check_tls_options(const DemoOptions& o);

// Makes the server context for `protocol`'s listeners (its ALPN names, the certificates,
// the handshake timeout), registers it for SIGHUP and its counters for --metrics. On
// failure returns one line naming the file and the reason.
std::string make_tls_server(DemoRun& run, const DemoProtocol& protocol,
                            std::shared_ptr<TlsServerContext>& out);

// The banner's words for a TLS listener: ", TLS OpenSSL 3.0.x, kTLS possible".
std::string tls_banner_detail(const DemoRun& run, const DemoProtocol& protocol);

// Once the server runs (loop 0 handles signals): SIGHUP reloads every TLS server
// context, logging what happened; on failure the old certificates stay. Also logs the
// TLS library and kTLS once. Nothing when no TLS listener was set up.
std::string handle_tls_reload(Server& server, DemoRun& run);

// A multi-line OpenSSL reason on one line.
std::string one_line(std::string text);

}  // namespace netloop::demo
