// netloop-demo: serves every built-in protocol from one reactor.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "demo_options.hpp"
#include "echo/tcp_echo.hpp"
#include "echo/udp_echo.hpp"
#include "http/http_responder.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/log.hpp"
#include "netloop/tcp_listener.hpp"
#include "netloop/udp_socket.hpp"

using namespace netloop;

namespace {

constexpr int kExitUsage = 2;

int list_pollers() {
  std::string def = default_backend();
  for (const auto& b : available_backends()) {
    if (b.available)
      std::printf("%-9s available%s\n", b.name.c_str(), b.name == def ? " (default)" : "");
    else
      std::printf("%-9s unavailable: %s\n", b.name.c_str(), b.reason.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = demo::parse_demo_options(args);
  if (!parsed.options) {
    std::fprintf(stderr, "netloop-demo: %s\n", parsed.error.c_str());
    return kExitUsage;
  }
  const auto& opt = *parsed.options;
  if (opt.help) {
    std::fputs(demo::demo_usage().c_str(), stdout);
    return 0;
  }
  if (opt.version) {
    std::printf("netloop-demo %s\n", NETLOOP_VERSION);
    return 0;
  }
  if (opt.list_pollers) return list_pollers();
  set_log_level(opt.log_level);
  std::signal(SIGPIPE, SIG_IGN);  // sends use MSG_NOSIGNAL; this covers anything else

  std::string why;
  auto loop = EventLoop::create(opt.poller, &why);
  if (!loop) {
    std::fprintf(stderr, "netloop-demo: %s\n", why.c_str());
    return kExitUsage;
  }

  std::vector<std::unique_ptr<TcpListener>> listeners;
  ListenerOptions lopt;
  lopt.connection = opt.connection;
  for (const auto& addr : opt.tcp_echo) {
    auto l = TcpListener::listen(**loop, addr, echo::tcp_echo_factory(), lopt);
    if (!l) {
      std::fprintf(stderr, "netloop-demo: cannot listen on %s (tcp-echo): %s\n",
                   addr.to_string().c_str(), l.error().message().c_str());
      return kExitUsage;
    }
    std::printf("netloop-demo: tcp-echo listening on %s (poller %s)\n",
                (*l)->local_address().to_string().c_str(),
                std::string((*loop)->backend_name()).c_str());
    listeners.push_back(std::move(*l));
  }
  std::shared_ptr<http::HttpResponder> responder;
  if (!opt.http.empty()) {
    auto r = http::HttpResponder::create(opt.http_options);
    if (!r) {
      std::fprintf(stderr, "netloop-demo: --root %s: %s\n", opt.http_options.root.c_str(),
                   r.error().message().c_str());
      return kExitUsage;
    }
    responder = std::move(*r);
  }
  for (const auto& addr : opt.http) {
    auto l = TcpListener::listen(**loop, addr, responder->factory(), lopt);
    if (!l) {
      std::fprintf(stderr, "netloop-demo: cannot listen on %s (http): %s\n",
                   addr.to_string().c_str(), l.error().message().c_str());
      return kExitUsage;
    }
    std::printf("netloop-demo: http listening on %s (poller %s, %s)\n",
                (*l)->local_address().to_string().c_str(),
                std::string((*loop)->backend_name()).c_str(),
                opt.http_options.root.empty() ? "built-in page"
                                              : ("root " + responder->root_path()).c_str());
    listeners.push_back(std::move(*l));
  }
  std::vector<std::unique_ptr<UdpSocket>> udp_sockets;
  for (const auto& addr : opt.udp_echo) {
    auto s = UdpSocket::bind(**loop, addr, echo::make_udp_echo_handler(), opt.udp);
    if (!s) {
      std::fprintf(stderr, "netloop-demo: cannot bind %s (udp-echo): %s\n",
                   addr.to_string().c_str(), s.error().message().c_str());
      return kExitUsage;
    }
    std::printf("netloop-demo: udp-echo listening on %s (poller %s)\n",
                (*s)->local_address().to_string().c_str(),
                std::string((*loop)->backend_name()).c_str());
    udp_sockets.push_back(std::move(*s));
  }
  std::fflush(stdout);

  EventLoop& lp = **loop;
  for (int sig : {SIGINT, SIGTERM}) {
    if (auto ec = lp.on_signal(sig, [&lp, sig] {
          log_info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
          lp.stop();
        })) {
      std::fprintf(stderr, "netloop-demo: cannot handle signal %d: %s\n", sig, ec.message().c_str());
      return 1;
    }
  }
  lp.run();
  for (const auto& s : udp_sockets) {
    const UdpStats& st = s->stats();
    log_info("udp-echo {}: {} datagrams in, {} out, dropped: {} truncated, {} send buffer full, "
             "{} too large, {} send errors; {} peer errors ignored",
             s->local_address().to_string(), st.datagrams_in, st.datagrams_out,
             st.dropped_truncated, st.dropped_send_full, st.dropped_too_large,
             st.dropped_send_error, st.peer_errors);
  }
  if (responder) {
    const auto& st = responder->stats();
    log_info("http: {} requests; responses {} 2xx, {} 3xx, {} 4xx, {} 5xx; {} rejected by the "
             "parser, {} timeouts, {} sent with sendfile",
             st.requests, st.responses[2], st.responses[3], st.responses[4], st.responses[5],
             st.bad_requests, st.timeouts, st.files_sent);
  }
  listeners.clear();
  udp_sockets.clear();
  return 0;
}
