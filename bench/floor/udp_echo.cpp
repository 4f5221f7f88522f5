// floor-udp-echo: the simplest honest nonblocking UDP echo server, the floor netloop-demo's
// batched UDP echo (recvmmsg/sendmmsg) is measured against. No framework, no netloop,
// no batching.
//
// Level-triggered epoll on one socket: per readiness event one recvfrom() into a
// 65,536-byte buffer (any UDP datagram fits) and at once one sendto() of it back to its
// sender: one datagram per system call. A reply the kernel refuses (send buffer full:
// EAGAIN/ENOBUFS) is dropped, as UDP allows; ICMP errors that surface on the socket
// (ECONNREFUSED from a client that went away) are ignored. SIGINT/SIGTERM via signalfd
// (exit 0); the counts go to stderr on the way out.
//
// --per-wakeup N (default 1) reads up to N datagrams per readiness event, stopping at
// EAGAIN: still one datagram per recvfrom/sendto, but fewer epoll_wait calls under load.
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <string>
#include <string_view>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

constexpr size_t kBufferBytes = 65536;

struct Counts {
  unsigned long long in = 0, out = 0, dropped_full = 0, send_errors = 0, peer_errors = 0,
                     truncated = 0;
};

bool parse_address(std::string_view text, sockaddr_storage& ss, socklen_t& len) {
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find("]:");
    if (close == std::string_view::npos) return false;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return false;
  unsigned long p = std::stoul(port);
  if (p > 65535) return false;
  std::memset(&ss, 0, sizeof ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(uint16_t(p));
    len = sizeof *v4;
    return true;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(uint16_t(p));
    len = sizeof *v6;
    return true;
  }
  return false;
}

std::string to_string(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    std::string out = "[";  // appended piecewise: "[" + string trips GCC 12's -Wrestrict
    out += host;
    out += "]:";
    out += std::to_string(ntohs(v6->sin6_port));
    return out;
  }
  auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(v4->sin_port));
}

bool is_peer_error(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
         err == ENETDOWN || err == ECONNRESET;
}

// Up to `limit` datagrams, each received and echoed on its own; stops at EAGAIN.
void on_readable(int fd, char* buf, unsigned limit, Counts& c) {
  for (unsigned i = 0; i < limit; ++i) {
    sockaddr_storage from;
    socklen_t from_len = sizeof from;
    ssize_t n = ::recvfrom(fd, buf, kBufferBytes, MSG_TRUNC, reinterpret_cast<sockaddr*>(&from),
                           &from_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (is_peer_error(errno)) {
        ++c.peer_errors;
        continue;
      }
      return;  // EAGAIN: drained
    }
    ++c.in;
    if (size_t(n) > kBufferBytes) {  // MSG_TRUNC reports the real length: never echo a part
      ++c.truncated;
      continue;
    }
    ssize_t w;
    do {
      w = ::sendto(fd, buf, size_t(n), 0, reinterpret_cast<sockaddr*>(&from), from_len);
    } while (w < 0 && errno == EINTR);
    if (w >= 0) ++c.out;
    else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) ++c.dropped_full;
    else if (is_peer_error(errno)) ++c.peer_errors;
    else ++c.send_errors;
  }
}

int usage(FILE* out, int code) {
  std::fputs(
      "Usage: floor-udp-echo [--per-wakeup N] HOST:PORT\n\n"
      "A minimal level-triggered epoll UDP echo server, one datagram per recvfrom/sendto\n"
      "and no batching: the baseline netloop-demo's UDP echo is compared against. HOST is\n"
      "numeric IPv4 or [IPv6]; port 0 picks a free port, and the banner line says which.\n"
      "--per-wakeup N reads up to N datagrams per readiness event (default 1).\n"
      "SIGINT or SIGTERM stops it (exit 0).\n",
      out);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  const char* address = nullptr;
  unsigned per_wakeup = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") return usage(stdout, 0);
    if (a == "--per-wakeup") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "floor-udp-echo: --per-wakeup needs a count\n");
        return 2;
      }
      std::string v = argv[++i];
      if (v.empty() || v.size() > 4 || v.find_first_not_of("0123456789") != std::string::npos ||
          std::stoul(v) < 1 || std::stoul(v) > 1024) {
        std::fprintf(stderr, "floor-udp-echo: --per-wakeup %s: expected 1 to 1024\n", v.c_str());
        return 2;
      }
      per_wakeup = unsigned(std::stoul(v));
    } else if (a.size() > 1 && a[0] == '-' && a[1] == '-') {
      std::fprintf(stderr, "floor-udp-echo: unknown option '%s'\n", argv[i]);
      return usage(stderr, 2);
    } else if (address) {
      std::fprintf(stderr, "floor-udp-echo: expected exactly one HOST:PORT\n");
      return usage(stderr, 2);
    } else {
      address = argv[i];
    }
  }
  if (!address) {
    std::fprintf(stderr, "floor-udp-echo: expected exactly one argument, HOST:PORT\n");
    return usage(stderr, 2);
  }
  sockaddr_storage addr;
  socklen_t addr_len = 0;
  if (!parse_address(address, addr, addr_len)) {
    std::fprintf(stderr, "floor-udp-echo: '%s' is not a numeric HOST:PORT (e.g. 127.0.0.1:7007, [::1]:7007)\n",
                 address);
    return 2;
  }

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  int sfd = ::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);

  int fd = ::socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0 && addr.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) < 0) {
    std::fprintf(stderr, "floor-udp-echo: cannot bind %s: %s\n", address, std::strerror(errno));
    return 2;
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);

  int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0 || sfd < 0) {
    std::fprintf(stderr, "floor-udp-echo: %s\n", std::strerror(errno));
    return 1;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  ::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  ev.data.fd = sfd;
  ::epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);

  std::printf("floor-udp-echo: listening on %s\n", to_string(addr).c_str());
  std::fflush(stdout);

  static char buf[kBufferBytes];
  Counts counts;
  epoll_event events[2];
  for (;;) {
    int n = ::epoll_wait(epfd, events, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "floor-udp-echo: epoll_wait: %s\n", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == sfd) {
        std::fprintf(stderr,
                     "floor-udp-echo: %llu datagrams in, %llu out; dropped: %llu send buffer full, "
                     "%llu truncated, %llu send errors; %llu peer errors ignored\n",
                     counts.in, counts.out, counts.dropped_full, counts.truncated,
                     counts.send_errors, counts.peer_errors);
        return 0;
      }
      on_readable(fd, buf, per_wakeup, counts);
    }
  }
}
