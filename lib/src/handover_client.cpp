// HandoverClient: the new instance asks the old one for its listening sockets, then
// confirms it serves them.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <deque>

#include "handover_wire.hpp"
#include "netloop/handover.hpp"
#include "netloop/log.hpp"

namespace netloop {
namespace wire = handover_wire;
namespace {

std::error_code fail(std::string* why, std::string text, std::error_code ec) {
  if (why) *why = std::move(text);
  return ec;
}

int remaining_ms(TimePoint deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : int(std::min<int64_t>(left, 1'000'000));
}

// Waits for `events` on `fd` until `deadline`: false on timeout (errno ETIMEDOUT).
bool wait_for(int fd, short events, TimePoint deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return true;
    if (r == 0) {
      errno = ETIMEDOUT;
      return false;
    }
    if (errno != EINTR) return false;
  }
}

}  // namespace

HandoverClient::~HandoverClient() {
  if (loop_ && timer_) loop_->cancel_timer(timer_);
  watcher_.reset();
}

Result<std::unique_ptr<HandoverClient>> HandoverClient::request(const std::string& path,
                                                                const HandoverOptions& options,
                                                                std::string* why) {
  std::unique_ptr<HandoverClient> client(new HandoverClient());
  client->options_ = options;
  const std::string at = path + ": ";
  struct stat st{};
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return client;  // nobody: start fresh
    return fail(why, at + std::strerror(errno), last_error());
  }
  if (!S_ISSOCK(st.st_mode))
    return fail(why, at + "exists and is not a socket (not replaced)", make_error(EEXIST));
  sockaddr_un sa;
  socklen_t salen;
  if (!wire::make_address(path, sa, salen))
    return fail(why, at + "too long for a UNIX socket address", make_error(ENAMETOOLONG));

  const TimePoint deadline = Clock::now() + options.timeout;
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail(why, at + "socket: " + std::strerror(errno), last_error());
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), salen) == 0) break;
    int err = errno;
    // A socket file nobody listens on: what an instance that died leaves. Start fresh.
    if (err == ECONNREFUSED || err == ENOENT) return client;
    if (err == EINTR) continue;
    if (err == EAGAIN && remaining_ms(deadline) > 0) {  // its accept queue is full: retry
      ::usleep(10'000);
      continue;
    }
    return fail(why, at + "connect: " + std::strerror(err), make_error(err));
  }

  // The request; a few bytes into an empty socket buffer.
  std::string request = std::string(wire::kRequest) + "\n";
  if (!wait_for(fd.get(), POLLOUT, deadline) ||
      wire::send_with_fd(fd.get(), request, -1) != ssize_t(request.size())) {
    // A refusal is said at once, and the connection closed: read it below.
    if (errno != EPIPE && errno != ECONNRESET)
      return fail(why, at + "cannot send the request: " + std::strerror(errno), last_error());
  }

  std::string buffer, line;
  std::deque<Fd> fds;  // received, not yet matched to their socket line
  std::vector<Fd> batch;
  std::vector<ListeningSocket> sockets;
  for (;;) {
    bool too_long = false;
    while (wire::next_line(buffer, line, too_long)) {
      if (line.rfind("error ", 0) == 0)
        return fail(why, at + "the running instance refused: " + line.substr(6),
                    make_error(ECONNREFUSED));
      if (line.rfind("end ", 0) == 0) {
        if (line != "end " + std::to_string(sockets.size()) || !fds.empty() || !buffer.empty())
          return fail(why, at + "protocol error: \"" + line.substr(0, 80) + "\" after " +
                               std::to_string(sockets.size()) + " socket(s)",
                      make_error(EPROTO));
        client->channel_ = std::move(fd);
        client->sockets_ = std::move(sockets);
        return client;
      }
      ListeningSocket s;
      std::string bad;
      if (!wire::parse_socket_line(line, s, &bad))
        return fail(why, at + "protocol error: " + bad, make_error(EPROTO));
      if (fds.empty())
        return fail(why, at + "protocol error: a socket line without its descriptor",
                    make_error(EPROTO));
      s.fd = std::move(fds.front());
      fds.pop_front();
      // The descriptor must be what the line says it is.
      int type = 0;
      socklen_t tlen = sizeof type;
      Address local = Address::local_of(s.fd.get(), Address());
      if (::getsockopt(s.fd.get(), SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 ||
          type != (s.datagram ? SOCK_DGRAM : SOCK_STREAM) || !(local == s.address))
        return fail(why, at + "protocol error: the descriptor is not the socket \"" + line + "\"",
                    make_error(EPROTO));
      if (sockets.size() >= options.max_sockets)
        return fail(why, at + "more than " + std::to_string(options.max_sockets) + " sockets",
                    make_error(EPROTO));
      sockets.push_back(std::move(s));
    }
    if (too_long) return fail(why, at + "protocol error: a line too long", make_error(EPROTO));

    if (!wait_for(fd.get(), POLLIN, deadline))
      return fail(why, at + (errno == ETIMEDOUT ? "no answer within the timeout"
                                                : std::string("poll: ") + std::strerror(errno)),
                  last_error());
    char chunk[4096];
    bool truncated = false;
    batch.clear();
    ssize_t n = wire::receive(fd.get(), chunk, sizeof chunk, batch, truncated);
    for (auto& f : batch) fds.push_back(std::move(f));
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return fail(why, at + "receive: " + std::strerror(errno), last_error());
    }
    if (truncated)
      return fail(why, at + "descriptors lost in transit (MSG_CTRUNC)", make_error(EPROTO));
    if (n == 0)
      return fail(why, at + "the running instance closed the connection after " +
                           std::to_string(sockets.size()) + " socket(s), before the end",
                  make_error(ECONNRESET));
    buffer.append(chunk, size_t(n));
  }
}

void HandoverClient::confirm(EventLoop& loop, Done done) {
  loop_ = &loop;
  done_ = std::move(done);
  if (!channel_) {
    finish(make_error(ENOTCONN), "no handover under way");
    return;
  }
  std::string taken = std::string(wire::kTaken) + "\n";
  if (wire::send_with_fd(channel_.get(), taken, -1) != ssize_t(taken.size())) {
    finish(last_error(), std::string("cannot send the confirmation: ") + std::strerror(errno));
    return;
  }
  watcher_ = std::make_unique<IoWatcher>(loop, [this](uint32_t) { on_reply(); });
  if (auto r = watcher_->start(channel_.get(), Interest::read); !r) {
    finish(r.error(), "cannot watch the handover socket: " + r.error().message());
    return;
  }
  timer_ = loop.run_after(options_.timeout, [this] {
    timer_ = {};
    finish(make_error(ETIMEDOUT), "the old instance did not acknowledge within the timeout");
  });
}

void HandoverClient::on_reply() {
  char chunk[256];
  std::vector<Fd> fds;  // none expected: closed if any
  bool truncated = false;
  ssize_t n = wire::receive(channel_.get(), chunk, sizeof chunk, fds, truncated);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {
    finish(n == 0 ? make_error(ECONNRESET) : last_error(),
           "the old instance closed the connection before acknowledging");
    return;
  }
  reply_.append(chunk, size_t(n));
  std::string line;
  bool too_long = false;
  if (wire::next_line(reply_, line, too_long)) {
    if (line == wire::kDraining && fds.empty()) {
      finish({}, {});
    } else {
      finish(make_error(EPROTO), "protocol error: \"" + line.substr(0, 80) + "\"");
    }
  } else if (too_long) {
    finish(make_error(EPROTO), "protocol error: a line too long");
  }
}

void HandoverClient::finish(std::error_code ec, const std::string& why) {
  if (timer_) loop_->cancel_timer(std::exchange(timer_, {}));
  if (watcher_) watcher_->stop();
  channel_.reset();
  // Later, outside the watcher's callback: `done` may well destroy this client.
  if (done_) loop_->defer([done = std::move(done_), ec, why] { done(ec, why); });
  done_ = nullptr;
}

}  // namespace netloop
