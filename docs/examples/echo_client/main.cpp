// echo-client: sends lines to an echo server, checks that each comes back intact and
// reports the round trips, reconnecting with backoff while the server is away. Nothing
// but netloop's public API.
//
//   echo-client [--count N] [--interval MS] [--timeout SECONDS] HOST:PORT   (or HOST PORT)
//
// Sends the lines of stdin (read to its end before connecting), or N generated messages.
// HOST is a name or a numeric address ([::1]:7007), resolved through the Connector.
// Exits 0 once every message has come back; 1 when an echo differs, or when it has been
// without a connection for --timeout seconds (default 10), at the start or after losing
// one; 2 on bad arguments. Try it, next to `netloop-demo --tcp-echo 127.0.0.1:7007`:
//   seq 1000 | echo-client 127.0.0.1:7007
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "echo_client.hpp"
#include "netloop/connector.hpp"
#include "netloop/event_loop.hpp"

namespace {

constexpr const char* kUsage =
    "usage: echo-client [--count N] [--interval MS] [--timeout SECONDS] HOST:PORT\n"
    "       echo-client [options] HOST PORT\n"
    "Sends the lines of stdin (or N generated messages) to an echo server and checks\n"
    "each echo; reconnects while the server is away, gives up after --timeout seconds\n"
    "(default 10) without a connection.\n";

struct Args {
  std::string host;
  uint16_t port = 0;
  std::optional<uint64_t> count;  // none: the lines of stdin
  netloop::Duration interval{};
  netloop::Duration timeout = netloop::seconds(10);
};

std::optional<uint64_t> number(std::string_view s, uint64_t lo, uint64_t hi) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

// Fills `args`, or says what is wrong in `why`.
bool parse_args(int argc, char** argv, Args& args, std::string& why) {
  auto bad = [&why](std::string what) {
    why = std::move(what);
    return false;
  };
  std::vector<std::string_view> targets;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--count" || a == "--interval" || a == "--timeout") {
      std::optional<uint64_t> v;
      if (i + 1 < argc) v = number(argv[++i], a == "--timeout" ? 1 : 0, 10'000'000);
      if (!v) return bad(std::string(a) + " wants a number");
      if (a == "--count") args.count = *v;
      if (a == "--interval") args.interval = netloop::milliseconds(*v);
      if (a == "--timeout") args.timeout = netloop::seconds(*v);
    } else if (a.starts_with("-")) {
      return bad("unknown option " + std::string(a));
    } else {
      targets.push_back(a);
    }
  }
  std::string_view host, port;
  if (targets.size() == 2) {
    host = targets[0];
    port = targets[1];
  } else if (targets.size() == 1 && targets[0].find(':') != std::string_view::npos) {
    size_t colon = targets[0].rfind(':');
    host = targets[0].substr(0, colon);
    port = targets[0].substr(colon + 1);
    if (host.size() > 1 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string_view::npos) {
      return bad("write an IPv6 address in brackets: [" + std::string(host) + "]:PORT");
    }
  } else {
    return bad(targets.empty() ? "no server given" : "expected HOST:PORT or HOST PORT");
  }
  std::optional<uint64_t> p = number(port, 1, 65535);
  if (host.empty() || !p) return bad("bad server address (HOST:PORT, port 1-65535)");
  args.host = std::string(host);
  args.port = uint16_t(*p);
  return true;
}

std::vector<std::string> messages(const Args& args) {
  std::vector<std::string> out;
  if (args.count) {
    for (uint64_t i = 1; i <= *args.count; ++i)
      out.push_back("message " + std::to_string(i) + " of " + std::to_string(*args.count) + "\n");
    return out;
  }
  for (std::string line; std::getline(std::cin, line);) out.push_back(line + '\n');
  return out;
}

double ms(netloop::Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  Args args;
  std::string why;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (std::string_view(argv[i]) == "--version") {
      std::puts("echo-client (netloop " NETLOOP_VERSION ")");
      return 0;
    }
  }
  if (!parse_args(argc, argv, args, why)) {
    std::fprintf(stderr, "echo-client: %s\n%s", why.c_str(), kUsage);
    return 2;
  }
  auto loop = netloop::EventLoop::create({}, &why);
  if (!loop) {
    std::fprintf(stderr, "echo-client: %s\n", why.c_str());
    return 1;
  }
  netloop::EventLoop& lp = **loop;
  const bool v6 = args.host.find(':') != std::string::npos;
  const std::string target =
      (v6 ? "[" + args.host + "]" : args.host) + ":" + std::to_string(args.port);

  auto session = std::make_shared<echo_client::Session>(messages(args), args.interval);
  // Give up after --timeout without a connection: armed at the start and at each loss.
  std::string last_error = "the server did not answer";
  netloop::TimerId give_up;
  int status = 0;
  auto arm_give_up = [&] {
    if (lp.timer_pending(give_up)) return;
    give_up = lp.run_after(args.timeout, [&] {
      // Said now: a connect failing in this same batch must not change the words.
      std::fprintf(stderr, "echo-client: no connection to %s for %lld s: %s\n", target.c_str(),
                   static_cast<long long>(args.timeout / netloop::seconds(1)), last_error.c_str());
      status = 1;
      lp.stop();
    });
  };
  session->on_connected = [&](netloop::Connection& conn) {
    lp.cancel_timer(give_up);
    std::fprintf(stderr, "echo-client: connected to %s\n", conn.peer_address().to_string().c_str());
  };
  session->on_disconnected = [&](const netloop::CloseInfo& info) {
    if (info.reason == netloop::CloseReason::connect_failed) {
      last_error = info.text;
    } else {
      last_error = "connection lost (" + std::string(netloop::to_string(info.reason)) + ")";
      std::fprintf(stderr, "echo-client: %s; reconnecting\n", last_error.c_str());
    }
    arm_give_up();
  };
  session->on_finished = [&] { lp.stop(); };

  netloop::Connector connector(lp);  // after the loop: it goes first
  netloop::ReconnectOptions backoff;
  backoff.initial = netloop::milliseconds(100);
  backoff.max = netloop::seconds(2);
  connector.keep_connected(args.host, args.port, echo_client::echo_client_factory(session),
                           backoff);
  arm_give_up();
  lp.run();

  if (status != 0) return status;
  if (!session->error.empty()) {
    std::fprintf(stderr, "echo-client: %s: %s\n", target.c_str(), session->error.c_str());
    return 1;
  }
  const echo_client::Stats& st = session->stats;
  std::printf("echo-client: %zu messages echoed intact", session->echoed);
  if (session->echoed > 0)
    std::printf("; round trip min %.3f ms, avg %.3f ms, max %.3f ms", ms(st.rtt_min),
                ms(st.rtt_total) / double(session->echoed), ms(st.rtt_max));
  std::printf("; %llu connections, %llu messages resent\n",
              static_cast<unsigned long long>(st.connects),
              static_cast<unsigned long long>(st.resent));
  return 0;
}
