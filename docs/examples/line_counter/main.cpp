// line-counter: serves the line-counter protocol on one event loop, with nothing but
// netloop's public API (it is also built out of tree by tests/install/run-install-test).
//
//   line-counter [HOST:PORT]    default 127.0.0.1:7070; port 0 lets the kernel pick one
//
// Prints "line-counter: listening on HOST:PORT" once it accepts connections; SIGINT and
// SIGTERM stop it. Try it: printf 'INCR a\nINCR a\nGET a\nQUIT\n' | nc 127.0.0.1 7070
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "line_counter.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/tcp_listener.hpp"

int main(int argc, char** argv) {
  if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
    std::fprintf(stderr, "usage: line-counter [HOST:PORT]\n");
    return 2;
  }
  std::string why;
  auto address = netloop::Address::parse_numeric(argc == 2 ? argv[1] : "127.0.0.1:7070", &why);
  if (!address) {
    std::fprintf(stderr, "line-counter: %s\n", why.c_str());
    return 2;
  }
  auto loop = netloop::EventLoop::create({}, &why);  // the best poller backend available
  if (!loop) {
    std::fprintf(stderr, "line-counter: %s\n", why.c_str());
    return 1;
  }
  netloop::EventLoop& lp = **loop;

  // One Service per loop: every connection this listener accepts shares its counters.
  auto service = std::make_shared<line_counter::Service>();
  auto listener =
      netloop::TcpListener::listen(lp, *address, line_counter::line_counter_factory(service));
  if (!listener) {
    std::fprintf(stderr, "line-counter: cannot listen on %s: %s\n", address->to_string().c_str(),
                 listener.error().message().c_str());
    return 2;
  }
  for (int sig : {SIGINT, SIGTERM}) lp.on_signal(sig, [&lp] { lp.stop(); });

  std::printf("line-counter: listening on %s\n", (*listener)->local_address().to_string().c_str());
  std::fflush(stdout);  // whoever started us may be waiting for that line on a pipe
  lp.run();

  const line_counter::Stats& st = service->stats;
  std::fprintf(stderr, "line-counter: %llu connections, %llu commands, %llu idle timeouts\n",
               static_cast<unsigned long long>(st.connections),
               static_cast<unsigned long long>(st.commands),
               static_cast<unsigned long long>(st.idle_timeouts));
  return 0;  // the listener goes first (closing its connections), then the loop
}
