// floor-http: the smallest honest level-triggered epoll HTTP/1.1 responder, the speed
// floor netloop-demo's HTTP GET responder is measured against. No framework, no netloop.
//
// It reads FILE once at start and answers every request, whatever its method or path,
// with one precomputed "200 OK" carrying the header set a real static server sends
// (Server, Date, Content-Type: text/html, Content-Length, Last-Modified) and the file as
// body. The Date value sits at a fixed offset in that response and is rewritten in place
// at most once per second. Keep-alive always; requests are taken to have no body.
//
// Per readable socket: one recv() into a 64 KiB buffer; every "\r\n\r\n" in it ends a
// request, and all the requests one read completes (pipelining) are answered with ONE
// send() of that many copies of the response. A partial request is kept for the next
// read (above 64 KiB without an end of headers the connection is closed). Only bytes the
// kernel refuses are kept; the socket then waits for EPOLLOUT alone (reading stops until
// they are gone). Nothing is allocated per request: the copies are assembled in one
// shared buffer that only ever grows, and a connection's own buffers are touched only
// for a split request or a refused send. TCP_NODELAY, MSG_NOSIGNAL, accept4 in a batch,
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
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr int kMaxEvents = 512;             // the same batch size as netloop's loop
constexpr size_t kReadBytes = 64 * 1024;
constexpr size_t kMaxRequestBytes = 64 * 1024;  // unfinished header block: more closes
constexpr std::string_view kEndOfHeaders = "\r\n\r\n";
constexpr size_t kDateLen = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 IMF-fixdate)

struct Conn {
  int fd = -1;
  std::string in;          // an unfinished request, kept between reads
  std::vector<char> out;   // what the kernel refused, from `offset` on
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

std::string response;      // the whole answer to one request: status, headers, body
size_t date_offset = 0;    // where the Date value starts in `response`
time_t date_second = -1;   // the second the Date value shows
std::vector<char> batch;   // `response` repeated for a pipelined batch; grows, never shrinks
char read_buf[kReadBytes];

long long now_ms() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1'000'000;
}

void http_date(time_t t, char* out /* kDateLen + 1 */) {
  tm g;
  ::gmtime_r(&t, &g);
  // The C locale (never changed here) gives the English day and month names HTTP wants.
  std::strftime(out, kDateLen + 1, "%a, %d %b %Y %H:%M:%S GMT", &g);
}

// Rewrites the Date header in place when the second has changed since the last call.
void refresh_date() {
  time_t now = ::time(nullptr);  // vDSO: no system call
  if (now == date_second) return;
  date_second = now;
  char text[kDateLen + 1];
  http_date(now, text);
  std::memcpy(response.data() + date_offset, text, kDateLen);
}

bool build_response(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  int err = 0;
  if (::fstat(fd, &st) < 0)
    err = errno;
  else if (!S_ISREG(st.st_mode))
    err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;  // a regular file, or nothing to serve
  if (err != 0) {
    ::close(fd);
    errno = err;
    return false;
  }
  std::string body;
  body.resize(size_t(st.st_size));
  size_t got = 0;
  while (got < body.size()) {
    ssize_t n = ::read(fd, body.data() + got, body.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  ::close(fd);
  body.resize(got);

  char modified[kDateLen + 1];
  http_date(st.st_mtime, modified);
  response = "HTTP/1.1 200 OK\r\nServer: floor-http\r\nDate: ";
  date_offset = response.size();
  response.append(kDateLen, '-');  // filled by refresh_date()
  response += "\r\nContent-Type: text/html\r\nContent-Length: ";
  response += std::to_string(body.size());
  response += "\r\nLast-Modified: ";
  response += modified;
  response += "\r\n\r\n";
  response += body;
  refresh_date();
  return true;
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

// Sends [data, data + n) of fresh output; keeps what the kernel refuses and switches the
// socket to EPOLLOUT. Returns false when the connection was closed.
bool send_or_keep(Conn* c, const char* data, size_t n) {
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
  if (done < n) {
    c->out.assign(data + done, data + n);
    c->offset = 0;
    set_events(c, EPOLLOUT);
  }
  return true;
}

// Sends more of what the kernel refused before; back to EPOLLIN once it is all gone.
void flush_kept(Conn* c) {
  while (c->offset < c->out.size()) {
    ssize_t w = ::send(c->fd, c->out.data() + c->offset, c->out.size() - c->offset, MSG_NOSIGNAL);
    if (w > 0) {
      c->offset += size_t(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_conn(c);
    return;
  }
  c->out.clear();
  c->offset = 0;
  set_events(c, EPOLLIN);
}

// Counts the complete requests in [data, data + n), searching from `from` on; `*used`
// gets the length of the prefix they occupy (the rest is an unfinished request).
size_t count_requests(const char* data, size_t n, size_t from, size_t* used) {
  size_t count = 0;
  size_t end = 0;
  while (from + kEndOfHeaders.size() <= n) {
    const void* hit = ::memmem(data + from, n - from, kEndOfHeaders.data(), kEndOfHeaders.size());
    if (hit == nullptr) break;
    end = size_t(static_cast<const char*>(hit) - data) + kEndOfHeaders.size();
    from = end;
    ++count;
  }
  *used = end;
  return count;
}

// Answers `count` requests with one send(). Returns false when the connection was closed.
bool answer(Conn* c, size_t count) {
  if (count == 1) return send_or_keep(c, response.data(), response.size());
  size_t total = count * response.size();
  if (batch.size() < total) batch.resize(total);
  char* p = batch.data();
  for (size_t i = 0; i < count; ++i, p += response.size())
    std::memcpy(p, response.data(), response.size());
  return send_or_keep(c, batch.data(), total);
}

void on_conn(Conn* c) {
  if (!c->out.empty()) {
    // Waiting for EPOLLOUT (an error or hangup also lands here: send() reports it).
    flush_kept(c);
    return;
  }
  ssize_t n = ::recv(c->fd, read_buf, sizeof read_buf, 0);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    close_conn(c);  // end of stream, or an error
    return;
  }
  size_t used = 0;
  size_t count;
  if (c->in.empty()) {
    // The usual case: whole requests straight from the read buffer, no copy.
    count = count_requests(read_buf, size_t(n), 0, &used);
    if (used < size_t(n)) c->in.assign(read_buf + used, size_t(n) - used);
  } else {
    // An earlier read ended inside a request: join, and search only what can hold a new
    // end of headers (it may straddle the join).
    size_t kept = c->in.size();
    c->in.append(read_buf, size_t(n));
    size_t from = kept >= kEndOfHeaders.size() - 1 ? kept - (kEndOfHeaders.size() - 1) : 0;
    count = count_requests(c->in.data(), c->in.size(), from, &used);
    c->in.erase(0, used);
  }
  if (c->in.size() > kMaxRequestBytes) {
    close_conn(c);  // a header block this long is not a request we answer
    return;
  }
  if (count > 0) answer(c, count);
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
      "Usage: floor-http HOST:PORT FILE\n\n"
      "A minimal level-triggered epoll HTTP/1.1 responder: the baseline netloop-demo's HTTP\n"
      "GET responder is compared against. It reads FILE once and answers every request\n"
      "(any method, any path; pipelining and keep-alive) with 200 OK and FILE as the body.\n"
      "HOST is numeric IPv4 or [IPv6]; port 0 picks a free port, and the banner line says\n"
      "which. SIGINT or SIGTERM stops it (exit 0).\n",
      out);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0))
    return usage(stdout, 0);
  if (argc != 3) {
    std::fprintf(stderr, "floor-http: expected two arguments, HOST:PORT and FILE\n");
    return usage(stderr, 2);
  }
  sockaddr_storage addr;
  socklen_t addr_len = 0;
  if (!parse_address(argv[1], addr, addr_len)) {
    std::fprintf(stderr, "floor-http: '%s' is not a numeric HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080)\n",
                 argv[1]);
    return 2;
  }
  if (!build_response(argv[2])) {
    std::fprintf(stderr, "floor-http: cannot read %s: %s\n", argv[2], std::strerror(errno));
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
    std::fprintf(stderr, "floor-http: cannot listen on %s: %s\n", argv[1], std::strerror(errno));
    return 2;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);

  epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0 || sfd < 0) {
    std::fprintf(stderr, "floor-http: %s\n", std::strerror(errno));
    return 1;
  }
  reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &listener_tag;
  ::epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);
  ev.data.ptr = &signal_tag;
  ::epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);

  std::printf("floor-http: listening on %s\n", to_string(addr).c_str());
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
      std::fprintf(stderr, "floor-http: epoll_wait: %s\n", std::strerror(errno));
      return 1;
    }
    refresh_date();  // once per wake-up, before any answer of this batch
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
