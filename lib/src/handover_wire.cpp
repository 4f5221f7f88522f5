// The handover's wire format: lines and descriptors over a UNIX stream socket.
#include "handover_wire.hpp"

#include <sys/socket.h>

#include <charconv>
#include <cstring>

namespace netloop::handover_wire {

std::string socket_line(const ListeningSocket& s) {
  return "socket " + std::string(s.datagram ? "datagram " : "stream ") + std::to_string(s.loop) +
         " " + s.address.to_string() + " " + s.name;
}

bool parse_socket_line(std::string_view line, ListeningSocket& out, std::string* why) {
  auto fail = [&](const char* what) {
    if (why) *why = std::string(what) + " in \"" + std::string(line.substr(0, 80)) + "\"";
    return false;
  };
  auto field = [&line]() {
    size_t sp = line.find(' ');
    std::string_view f = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    return f;
  };
  if (field() != "socket") return fail("not a socket line");
  std::string_view kind = field();
  if (kind != "stream" && kind != "datagram") return fail("an unknown kind");
  std::string_view loop = field();
  size_t index = 0;
  auto [end, ec] = std::from_chars(loop.data(), loop.data() + loop.size(), index);
  if (ec != std::errc() || end != loop.data() + loop.size() || loop.empty() || index > 65535)
    return fail("a bad loop index");
  std::string_view address = field();
  auto a = Address::parse_numeric(address);
  if (!a) return fail("a bad address");
  if (line.empty()) return fail("no name");
  out.name = std::string(line);
  out.address = *a;
  out.loop = index;
  out.datagram = kind == "datagram";
  return true;
}

bool make_address(const std::string& path, sockaddr_un& out, socklen_t& len) {
  std::memset(&out, 0, sizeof out);
  out.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof out.sun_path) {
    errno = ENAMETOOLONG;
    return false;
  }
  std::memcpy(out.sun_path, path.data(), path.size());
  len = socklen_t(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

ssize_t send_with_fd(int sock, std::string_view data, int fd) noexcept {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n;
}

ssize_t receive(int sock, char* buf, size_t n, std::vector<Fd>& fds, bool& truncated) noexcept {
  constexpr size_t kMaxFds = 16;  // the kernel hands over one message's descriptors at a time
  iovec iov{buf, n};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  int flags = MSG_DONTWAIT;
#ifdef MSG_CMSG_CLOEXEC
  flags |= MSG_CMSG_CLOEXEC;
#endif
  ssize_t r;
  do {
    r = ::recvmsg(sock, &msg, flags);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return r;
  truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      set_nonblocking_cloexec(fd);  // close-on-exec where MSG_CMSG_CLOEXEC is missing
      fds.emplace_back(fd);
    }
  }
  return r;
}

bool next_line(std::string& buffer, std::string& line, bool& too_long) {
  size_t nl = buffer.find('\n');
  too_long = (nl == std::string::npos ? buffer.size() : nl) > kMaxLine;
  if (too_long || nl == std::string::npos) return false;
  line.assign(buffer, 0, nl);
  buffer.erase(0, nl + 1);
  return true;
}

}  // namespace netloop::handover_wire
