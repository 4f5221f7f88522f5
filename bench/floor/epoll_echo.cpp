// floor-epoll-echo: the smallest honest level-triggered epoll TCP echo server, the speed
// floor netloop-demo's echo is measured against. No framework, no netloop.
//
// Per readable socket: one recv() into a 64 KiB stack buffer and an immediate send() of
// what arrived. Only bytes the kernel refuses are kept; the socket then waits for
// EPOLLOUT alone (reading stops until they are gone, so a peer that never reads cannot
// grow us). TCP_NODELAY like netloop's connections, MSG_NOSIGNAL, accept4 in a batch,
// EMFILE survived with a reserve descriptor, SIGINT/SIGTERM via signalfd (exit 0).
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <string_view>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr int kMaxEvents = 512;  // the same batch size as netloop's loop
constexpr size_t kReadBytes = 64 * 1024;

struct Conn {
  int fd = -1;
  std::vector<char> pending;  // what the kernel refused, from `offset` on
  size_t offset = 0;
};

// Distinct addresses that tag the listener and the signal descriptor in epoll_event.
Conn listener_tag;
Conn signal_tag;

int epfd = -1;
int listen_fd = -1;
int reserve_fd = -1;  // spent to shed one connection when descriptors run out
bool accept_paused = false;  // out of descriptors and of the reserve: retry in a moment
long long resume_accept_ms = 0;
constexpr int kAcceptRetryMs = 100;

long long now_ms() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1'000'000;
}

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

void set_events(Conn* c, uint32_t events, int op = EPOLL_CTL_MOD) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = c;
  ::epoll_ctl(epfd, op, c->fd, &ev);
}

void close_conn(Conn* c) {
  ::close(c->fd);  // also drops it from the epoll set
  delete c;
}

// Sends [data, data + n); keeps what the kernel refuses and switches to EPOLLOUT.
// Returns false when the connection was closed.
bool send_or_keep(Conn* c, const char* data, size_t n, bool from_pending) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::send(c->fd, data + done, n - done, MSG_NOSIGNAL);
    if (w > 0) {
      done += size_t(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    close_conn(c);  // reset, broken pipe or another socket error
    return false;
  }
  if (from_pending) {
    c->offset += done;
    if (c->offset == c->pending.size()) {
      std::vector<char>().swap(c->pending);  // idle connections keep nothing
      c->offset = 0;
      set_events(c, EPOLLIN);
    }
  } else if (done < n) {
    c->pending.assign(data + done, data + n);
    c->offset = 0;
    set_events(c, EPOLLOUT);
  }
  return true;
}

void on_conn(Conn* c) {
  if (!c->pending.empty()) {
    // Waiting for EPOLLOUT (an error or hangup also lands here: send() reports it).
    send_or_keep(c, c->pending.data() + c->offset, c->pending.size() - c->offset, true);
    return;
  }
  char buf[kReadBytes];
  ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
  if (n > 0) {
    send_or_keep(c, buf, size_t(n), false);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  close_conn(c);  // end of stream, or an error: nothing is left to echo
}

void on_accept() {
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if ((errno == EMFILE || errno == ENFILE) && reserve_fd >= 0) {
        // Accept the pending connection with the reserve descriptor and drop it, or the
        // listener would stay readable and the loop would spin.
        ::close(reserve_fd);
        int shed = ::accept(listen_fd, nullptr, nullptr);
        if (shed >= 0) ::close(shed);
        reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (shed >= 0) continue;
      }
      if (errno == EMFILE || errno == ENFILE) {
        // No reserve left either: stop watching the listener for a moment, not spin.
        ::epoll_ctl(epfd, EPOLL_CTL_DEL, listen_fd, nullptr);
        accept_paused = true;
        resume_accept_ms = now_ms() + kAcceptRetryMs;
      }
      return;  // EAGAIN, or nothing more to do this round
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto* c = new Conn;
    c->fd = fd;
    set_events(c, EPOLLIN, EPOLL_CTL_ADD);
  }
}

int usage(FILE* out, int code) {
  std::fputs(
      "Usage: floor-epoll-echo HOST:PORT\n\n"
      "A minimal level-triggered epoll TCP echo server: the baseline netloop-demo's echo\n"
      "is compared against. HOST is numeric IPv4 or [IPv6]; port 0 picks a free port, and\n"
      "the banner line says which. SIGINT or SIGTERM stops it (exit 0).\n",
      out);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0))
    return usage(stdout, 0);
  if (argc != 2) {
    std::fprintf(stderr, "floor-epoll-echo: expected exactly one argument, HOST:PORT\n");
    return usage(stderr, 2);
  }
  sockaddr_storage addr;
  socklen_t addr_len = 0;
  if (!parse_address(argv[1], addr, addr_len)) {
    std::fprintf(stderr, "floor-epoll-echo: '%s' is not a numeric HOST:PORT (e.g. 127.0.0.1:7007, [::1]:7007)\n",
                 argv[1]);
    return 2;
  }

  std::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  int sfd = ::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);

  listen_fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.ss_family == AF_INET6) ::setsockopt(listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (listen_fd < 0 || ::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), addr_len) < 0 ||
      ::listen(listen_fd, SOMAXCONN) < 0) {
    std::fprintf(stderr, "floor-epoll-echo: cannot listen on %s: %s\n", argv[1], std::strerror(errno));
    return 2;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);

  epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0 || sfd < 0) {
    std::fprintf(stderr, "floor-epoll-echo: %s\n", std::strerror(errno));
    return 1;
  }
  reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &listener_tag;
  ::epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);
  ev.data.ptr = &signal_tag;
  ::epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);

  std::printf("floor-epoll-echo: listening on %s\n", to_string(addr).c_str());
  std::fflush(stdout);

  epoll_event events[kMaxEvents];
  for (;;) {
    int n = ::epoll_wait(epfd, events, kMaxEvents, accept_paused ? kAcceptRetryMs : -1);
    if (accept_paused && now_ms() >= resume_accept_ms) {
      accept_paused = false;
      if (reserve_fd < 0) reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      epoll_event lev{};
      lev.events = EPOLLIN;
      lev.data.ptr = &listener_tag;
      ::epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &lev);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "floor-epoll-echo: epoll_wait: %s\n", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &listener_tag) {
        on_accept();
      } else if (tag == &signal_tag) {
        // Connections still open are closed by the kernel at exit.
        return 0;
      } else {
        // A descriptor appears at most once per batch, and only the one being handled is
        // ever closed, so no later event in this batch can point at a freed Conn.
        on_conn(static_cast<Conn*>(tag));
      }
    }
  }
}
