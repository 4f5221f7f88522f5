// HandoverSource: the running instance's end of a handover, served on its loop with
// nonblocking I/O, one new instance at a time.
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

struct HandoverSource::Session {
  enum class Phase : uint8_t { request, sending, confirm };
  struct Message {
    std::string text;
    Fd fd;  // rides on the message's first byte
  };
  Session(EventLoop& loop, Fd f, std::function<void(uint32_t)> cb)
      : fd(std::move(f)), watcher(loop, std::move(cb)) {}
  Fd fd;
  IoWatcher watcher;
  TimerId timer;
  Phase phase = Phase::request;
  std::string input;
  std::deque<Message> output;
  size_t sent = 0;  // of output.front().text
};

namespace {

std::error_code fail(std::string* why, std::string text, std::error_code ec) {
  if (why) *why = std::move(text) + ": " + ec.message();
  return ec;
}

// Only the same user (or root) may take the sockets; the file's mode 0600 says the same.
bool same_user(int fd) {
#ifdef SO_PEERCRED
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return false;
  return cred.uid == ::geteuid() || cred.uid == 0;
#else
  uid_t uid;
  gid_t gid;
  if (::getpeereid(fd, &uid, &gid) < 0) return false;
  return uid == ::geteuid() || uid == 0;
#endif
}

// False when the peer is gone (EPIPE, ECONNRESET): for refusals that is no matter.
bool say(int fd, std::string_view line) {
  std::string text = std::string(line) + "\n";
  return wire::send_with_fd(fd, text, -1) == ssize_t(text.size());
}

}  // namespace

Result<std::unique_ptr<HandoverSource>> HandoverSource::listen(EventLoop& loop,
                                                               const std::string& path,
                                                               Provide provide, Taken taken,
                                                               const HandoverOptions& options,
                                                               std::string* why) {
  const std::string temp = path + ".new." + std::to_string(::getpid());
  sockaddr_un sa;
  socklen_t salen;
  if (!wire::make_address(temp, sa, salen))
    return fail(why, path + ": too long for a UNIX socket address (with .new.PID)",
                make_error(ENAMETOOLONG));
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
    return fail(why, path + ": exists and is not a socket (not replaced)", make_error(EEXIST));
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail(why, path + ": socket", last_error());
  ::unlink(temp.c_str());  // left by a process of this pid that died
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), salen) < 0)
    return fail(why, temp + ": bind", last_error());
  auto unlink_temp = [&temp] { ::unlink(temp.c_str()); };
  if (::chmod(temp.c_str(), 0600) < 0 || ::listen(fd.get(), 8) < 0) {
    auto ec = last_error();
    unlink_temp();
    return fail(why, temp, ec);
  }
  if (::rename(temp.c_str(), path.c_str()) < 0) {
    auto ec = last_error();
    unlink_temp();
    return fail(why, path + ": rename", ec);
  }
  std::unique_ptr<HandoverSource> s(new HandoverSource(loop, path, std::move(fd),
                                                       std::move(provide), std::move(taken),
                                                       options));
  if (::stat(path.c_str(), &st) == 0) {
    s->dev_ = st.st_dev;
    s->ino_ = st.st_ino;
  }
  if (auto r = s->watcher_.start(s->fd_.get(), Interest::read); !r)
    return fail(why, path + ": cannot watch it", r.error());
  return s;
}

HandoverSource::HandoverSource(EventLoop& loop, std::string path, Fd fd, Provide provide,
                               Taken taken, const HandoverOptions& options)
    : loop_(loop),
      path_(std::move(path)),
      fd_(std::move(fd)),
      watcher_(loop, [this](uint32_t) { on_accept(); }),
      provide_(std::move(provide)),
      taken_(std::move(taken)),
      options_(options) {}

HandoverSource::~HandoverSource() {
  if (session_) {
    session_->watcher.stop();
    if (session_->timer) loop_.cancel_timer(session_->timer);
  }
  if (retry_timer_) loop_.cancel_timer(retry_timer_);
  watcher_.stop();
  // Once sockets went out, a successor may rename its own socket over the path at any
  // moment (even between a stat() and an unlink()): leave the path to it.
  if (passed_) return;
  struct stat st{};
  if (ino_ != 0 && ::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
    ::unlink(path_.c_str());
}

void HandoverSource::on_accept() {
  for (;;) {
#ifdef __linux__
    Fd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
#else
    Fd c(::accept(fd_.get(), nullptr, nullptr));
    if (c) set_nonblocking_cloexec(c.get());
#endif
    if (!c) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK && !retry_timer_) {
        // EMFILE and such: the listener stays readable; look again in a moment, not at once.
        watcher_.set_interest(Interest::none);
        retry_timer_ = loop_.run_after(milliseconds(100), [this] {
          retry_timer_ = {};
          watcher_.set_interest(Interest::read);
        });
      }
      return;
    }
    if (!same_user(c.get())) {
      log_warn("handover {}: a process of another user asked for the sockets; refused", path_);
      (void)say(c.get(), "error not the same user");
      continue;
    }
    if (handed_over_) {
      (void)say(c.get(), "error draining: the sockets went to another instance already");
      continue;
    }
    if (session_) {
      (void)say(c.get(), "error busy: another handover is under way");
      continue;
    }
    session_ = std::make_unique<Session>(loop_, std::move(c),
                                         [this](uint32_t ready) { on_session(ready); });
    if (auto r = session_->watcher.start(session_->fd.get(), Interest::read); !r) {
      end_session("cannot watch the connection: " + r.error().message());
      continue;
    }
    session_->timer = loop_.run_after(options_.timeout, [this] {
      session_->timer = {};
      end_session(session_->phase == Session::Phase::request
                      ? "no request within the timeout"
                      : "the new instance did not take the sockets within the timeout");
    });
  }
}

void HandoverSource::on_session(uint32_t ready) {
  if (!session_) return;
  if ((ready & ready::writable) && !write_session_output()) return;
  if (ready & (ready::readable | ready::hangup | ready::error)) (void)read_session_input();
}

// false: the session ended.
bool HandoverSource::write_session_output() {
  Session& s = *session_;
  while (!s.output.empty()) {
    auto& m = s.output.front();
    std::string_view rest = std::string_view(m.text).substr(s.sent);
    ssize_t n = wire::send_with_fd(s.fd.get(), rest, s.sent == 0 ? m.fd.get() : -1);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        s.watcher.set_interest(Interest::read_write);
        return true;
      }
      end_session(std::string("cannot send: ") + std::strerror(errno));
      return false;
    }
    s.sent += size_t(n);
    if (s.sent == m.text.size()) {
      s.output.pop_front();  // closes our duplicate: the peer has its own now
      s.sent = 0;
    }
  }
  s.watcher.set_interest(Interest::read);
  if (s.phase == Session::Phase::sending) {
    s.phase = Session::Phase::confirm;
    // The new instance starts serving now: it has this long again to say so.
    if (s.timer) loop_.cancel_timer(s.timer);
    s.timer = loop_.run_after(options_.timeout, [this] {
      session_->timer = {};
      // It may yet confirm and, unanswered, serve on beside this one: its settings stay.
      end_session("no confirmation within the timeout", false);
    });
  }
  return true;
}

// false: the session ended.
bool HandoverSource::read_session_input() {
  Session& s = *session_;
  char chunk[256];
  std::vector<Fd> fds;  // none expected: closed at once
  bool truncated = false;
  ssize_t n = wire::receive(s.fd.get(), chunk, sizeof chunk, fds, truncated);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
  if (n <= 0) {
    end_session(n == 0 ? "the new instance closed the connection before confirming"
                       : std::string("receive: ") + std::strerror(errno));
    return false;
  }
  s.input.append(chunk, size_t(n));
  std::string line;
  bool too_long = false;
  while (wire::next_line(s.input, line, too_long)) {
    if (s.phase == Session::Phase::request && line == wire::kRequest) {
      auto sockets = provide_();
      if (!sockets) {
        (void)say(s.fd.get(), sockets.error() == std::errc::operation_canceled
                                  ? "error draining: this instance is stopping"
                                  : "error " + sockets.error().message());
        end_session("cannot pass the sockets: " + sockets.error().message());
        return false;
      }
      for (auto& sock : *sockets)
        s.output.push_back({wire::socket_line(sock) + "\n", std::move(sock.fd)});
      s.output.push_back({"end " + std::to_string(sockets->size()) + "\n", Fd()});
      log_info("handover {}: passing {} listening socket(s) to a new instance", path_,
               sockets->size());
      passed_ = true;
      s.phase = Session::Phase::sending;
      if (!write_session_output()) return false;
      continue;
    }
    if (s.phase == Session::Phase::confirm && line == wire::kTaken && s.input.empty()) {
      // Drain only if the new instance hears it: gone already, it may have stepped back
      // (or died), and draining here too would leave nobody serving.
      if (!say(s.fd.get(), wire::kDraining)) {
        end_session(std::string("cannot acknowledge the confirmation (") + std::strerror(errno) +
                    "): the new instance is gone");
        return false;
      }
      handed_over_ = true;
      end_session({});
      log_info("handover {}: the new instance serves the sockets; draining", path_);
      if (taken_) taken_();
      return false;
    }
    (void)say(s.fd.get(), "error protocol");
    end_session("protocol error: \"" + line.substr(0, 80) + "\"");
    return false;
  }
  if (too_long) {
    end_session("protocol error: a line too long");
    return false;
  }
  return true;
}

void HandoverSource::end_session(const std::string& why, bool new_instance_gone) {
  if (!session_) return;
  if (!why.empty()) log_warn("handover {}: aborted ({}); still serving", path_, why);
  const bool sockets_went_out = session_->phase != Session::Phase::request;
  session_->watcher.stop();
  if (session_->timer) loop_.cancel_timer(std::exchange(session_->timer, {}));
  // Freed after this iteration: we may be inside its watcher's callback.
  Session* dead = session_.release();
  loop_.defer([dead] { delete dead; });
  // The new instance had the sockets and may have set them up its own way: once it is
  // gone (closed, failed, refused), this one's settings go back.
  if (!why.empty() && sockets_went_out && new_instance_gone && options_.not_taken)
    options_.not_taken();
}

}  // namespace netloop
