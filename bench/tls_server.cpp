// netloop-tls-server: a bench-only TLS server for bench/compare-tls while netloop-demo has
// no --https/--tls-echo: the HTTP responder and TCP echo of protocols/ over TLS, one
// event loop, served exactly as netloop-demo serves them (Server + StreamService::tls).
//
//   netloop-tls-server --tls-cert cert.pem --tls-key key.pem --https 127.0.0.1:0 --root DIR
//                      [--tls-echo 127.0.0.1:0] [--tcp-echo 127.0.0.1:0]
//
// Prints one banner line per listener ("netloop-tls-server: https listening on
// 127.0.0.1:PORT"), drains on SIGTERM like netloop-demo and exits 0. Not installed.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "echo/tcp_echo.hpp"
#include "http/http_handler.hpp"
#include "http/http_responder.hpp"
#include "netloop/log.hpp"
#include "netloop/server.hpp"
#include "netloop/tls.hpp"

using namespace netloop;

namespace {

constexpr int kExitUsage = 2;

void usage(FILE* to) {
  std::fputs(
      "Usage: netloop-tls-server --tls-cert FILE --tls-key FILE [--https HOST:PORT [--root DIR]]\n"
      "                          [--tls-echo HOST:PORT] [--tcp-echo HOST:PORT]\n"
      "A bench-only server: the HTTP responder (ALPN http/1.1) and TCP echo over TLS, plain\n"
      "TCP echo, on one event loop; SIGTERM drains and exits 0.\n",
      to);
}

int bad(const std::string& why) {
  std::fprintf(stderr, "netloop-tls-server: %s\n", why.c_str());
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cert, key, root;
  std::vector<Address> https, tls_echo, tcp_echo;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help") {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) return bad(a + ": unknown option or missing value (see --help)");
    std::string v = argv[++i];
    if (a == "--tls-cert") cert = v;
    else if (a == "--tls-key") key = v;
    else if (a == "--root") root = v;
    else if (a == "--https" || a == "--tls-echo" || a == "--tcp-echo") {
      std::string why;
      auto addr = Address::parse_numeric(v, &why);
      if (!addr) return bad(a + " " + v + ": " + why);
      (a == "--https" ? https : a == "--tls-echo" ? tls_echo : tcp_echo).push_back(*addr);
    } else {
      return bad("unknown option " + a + " (see --help)");
    }
  }
  if (cert.empty() || key.empty()) return bad("--tls-cert and --tls-key are required");
  if (https.empty() && tls_echo.empty() && tcp_echo.empty())
    return bad("nothing to serve: give --https, --tls-echo or --tcp-echo");
  set_log_level(LogLevel::warn);
  // As netloop-demo does. Needed here: the TLS layer's OpenSSL socket BIO writes with
  // write(2), not send(MSG_NOSIGNAL), so a peer that closes first raised SIGPIPE and
  // killed this server in the handshake-per-request case (seen with a8de30d).
  std::signal(SIGPIPE, SIG_IGN);

  std::string why;
  auto http_tls = TlsServerContext::create({.certificates = {{cert, key}}, .alpn = {"http/1.1"}}, &why);
  if (!http_tls) return bad(why.empty() ? http_tls.error().message() : why);
  auto echo_tls = TlsServerContext::create({.certificates = {{cert, key}}}, &why);
  if (!echo_tls) return bad(why.empty() ? echo_tls.error().message() : why);

  http::HttpOptions ho;
  ho.root = root;
  if (!root.empty()) {
    auto probe = http::HttpResponder::create(ho);
    if (!probe) return bad("--root " + root + ": " + probe.error().message());
  }

  Server server({.threads = 1});
  std::shared_ptr<http::HttpResponder> responder;  // one loop: one responder
  for (const auto& a : https) {
    server.add_stream("https", a, [&](EventLoop&, size_t) {
      if (!responder) responder = *http::HttpResponder::create(ho);
      return StreamService{.factory = responder->factory(),
                           .refusal_factory = http::refusal_factory(responder),
                           .tls = *http_tls};
    });
  }
  for (const auto& a : tls_echo) {
    server.add_stream("tls-echo", a, [&](EventLoop&, size_t) {
      return StreamService{.factory = echo::tcp_echo_factory(), .tls = *echo_tls};
    });
  }
  for (const auto& a : tcp_echo) {
    server.add_stream("tcp-echo", a, [](EventLoop&, size_t) {
      return StreamService{.factory = echo::tcp_echo_factory()};
    });
  }
  if (auto r = server.start(&why); !r) return bad(why.empty() ? r.error().message() : why);
  for (const auto& b : server.bound())
    std::printf("netloop-tls-server: %s listening on %s (%s)\n", b.name.c_str(),
                b.address.to_string().c_str(), std::string(tls_library_version()).c_str());
  std::fflush(stdout);
  if (auto r = server.handle_signals(); !r) return bad(r.error().message());
  server.run();
  return 0;
}
