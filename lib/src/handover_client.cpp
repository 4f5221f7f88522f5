// HandoverClient: the new instance asks the old one for its listening sockets, then
// confirms it serves them.
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
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

// Only the same user (or root) may hand us sockets.
bool trusted_uid(uid_t uid) { return uid == ::geteuid() || uid == 0; }

bool peer_trusted(int fd) {
#ifdef SO_PEERCRED
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return false;
  return trusted_uid(cred.uid);
#else
  uid_t uid;
  gid_t gid;
  if (::getpeereid(fd, &uid, &gid) < 0) return false;
  return trusted_uid(uid);
#endif
}

// The shared lock on `path`.lock every instance holds. `fresh`: nobody answers at `path`,
// so nobody may hold it either (EBUSY otherwise): taken exclusively, then shared.
std::error_code lock_instance(const std::string& path, bool fresh, TimePoint deadline, Fd& out,
                              std::string* why) {
  const std::string lock_path = path + ".lock";
  Fd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fail(why, lock_path + ": " + std::strerror(errno), last_error());
  if (fresh) {
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
      if (errno == EWOULDBLOCK)
        return fail(why, path + ": nothing answers there, but a running instance holds " +
                             lock_path + " (was its socket file deleted?); not starting beside it",
                    make_error(EBUSY));
      return fail(why, lock_path + ": flock: " + std::strerror(errno), last_error());
    }
  }
  // An instance starting fresh holds it exclusively for a moment: wait for it.
  while (::flock(fd.get(), LOCK_SH | LOCK_NB) < 0) {
    if (errno != EWOULDBLOCK && errno != EINTR)
      return fail(why, lock_path + ": flock: " + std::strerror(errno), last_error());
    if (remaining_ms(deadline) == 0)
      return fail(why, lock_path + ": still locked exclusively at the timeout",
                  make_error(ETIMEDOUT));
    ::usleep(10'000);
  }
  out = std::move(fd);
  return {};
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
  const TimePoint deadline = Clock::now() + options.timeout;
  auto fresh = [&]() -> Result<std::unique_ptr<HandoverClient>> {
    if (auto ec = lock_instance(path, true, deadline, client->lock_, why)) return ec;
    return std::move(client);
  };
  struct stat st{};
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return fresh();  // nobody: start fresh
    return fail(why, at + std::strerror(errno), last_error());
  }
  if (!S_ISSOCK(st.st_mode))
    return fail(why, at + "exists and is not a socket (not replaced)", make_error(EEXIST));
  if (!trusted_uid(st.st_uid))
    return fail(why, at + "the socket belongs to uid " + std::to_string(st.st_uid) +
                         ", not to this user (nor root): not used",
                make_error(EPERM));
  sockaddr_un sa;
  socklen_t salen;
  if (!wire::make_address(path, sa, salen))
    return fail(why, at + "too long for a UNIX socket address", make_error(ENAMETOOLONG));

  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail(why, at + "socket: " + std::strerror(errno), last_error());
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), salen) == 0) break;
    int err = errno;
    // A socket file nobody listens on: what an instance that died leaves. Start fresh.
    if (err == ECONNREFUSED || err == ENOENT) return fresh();
    if (err == EINTR) continue;
    if (err == EAGAIN && remaining_ms(deadline) > 0) {  // its accept queue is full: retry
      ::usleep(10'000);
      continue;
    }
    return fail(why, at + "connect: " + std::strerror(err), make_error(err));
  }
  if (!peer_trusted(fd.get()))
    return fail(why, at + "the process answering there is not this user's (nor root's)",
                make_error(EPERM));

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
        if (auto ec = lock_instance(path, false, deadline, client->lock_, why)) return ec;
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
    finish(Outcome::refused, "no handover under way");
    return;
  }
  // From here on the old one may have read "taken" (and drain), or be gone (SIGTERM after
  // it sent the sockets): nothing but its explicit refusal means it serves on.
  std::string taken = std::string(wire::kTaken) + "\n";
  if (wire::send_with_fd(channel_.get(), taken, -1) != ssize_t(taken.size())) {
    finish(Outcome::unclear,
           std::string("cannot send the confirmation (") + std::strerror(errno) +
               "): the old instance is gone or gave up");
    return;
  }
  watcher_ = std::make_unique<IoWatcher>(loop, [this](uint32_t) { on_reply(); });
  if (auto r = watcher_->start(channel_.get(), Interest::read); !r) {
    finish(Outcome::unclear, "cannot watch the handover socket: " + r.error().message());
    return;
  }
  timer_ = loop.run_after(options_.timeout, [this] {
    timer_ = {};
    finish(Outcome::unclear, "the old instance did not acknowledge within the timeout");
  });
}

void HandoverClient::on_reply() {
  char chunk[256];
  std::vector<Fd> fds;  // none expected: closed if any
  bool truncated = false;
  ssize_t n = wire::receive(channel_.get(), chunk, sizeof chunk, fds, truncated);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {
    finish(Outcome::unclear, n == 0 ? std::string("the old instance closed the connection "
                                                  "before acknowledging")
                                    : std::string("receive: ") + std::strerror(errno));
    return;
  }
  reply_.append(chunk, size_t(n));
  std::string line;
  bool too_long = false;
  if (wire::next_line(reply_, line, too_long)) {
    if (line == wire::kDraining && fds.empty()) {
      finish(Outcome::draining, {});
    } else if (line.rfind("error ", 0) == 0) {
      finish(Outcome::refused, "the old instance refused: " + line.substr(6, 80));
    } else {
      finish(Outcome::unclear, "protocol error: \"" + line.substr(0, 80) + "\"");
    }
  } else if (too_long) {
    finish(Outcome::unclear, "protocol error: a line too long");
  }
}

void HandoverClient::finish(Outcome outcome, const std::string& why) {
  if (timer_) loop_->cancel_timer(std::exchange(timer_, {}));
  if (watcher_) watcher_->stop();
  channel_.reset();
  // Later, outside the watcher's callback: `done` may well destroy this client.
  if (done_) loop_->defer([done = std::move(done_), outcome, why] { done(outcome, why); });
  done_ = nullptr;
}

}  // namespace netloop
