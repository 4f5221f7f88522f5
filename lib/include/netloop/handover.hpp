// Handover: a running Server passes its listening sockets (every TCP listener of every
// loop, every UDP socket) to a new instance of itself over a UNIX stream socket, with
// SCM_RIGHTS, so that a restart refuses and resets nothing: connections queued in the
// listen backlog stay queued in the very same sockets, now served by the new process.
//
//   old instance                               new instance (same PATH)
//   HandoverSource::listen(PATH) ...
//                                   <- connect  HandoverClient::request(PATH)
//                                   <- "netloop-handover 1"
//   "socket stream 0 127.0.0.1:80 http" + fd ->   (one message, one descriptor each)
//   "end N"                                  ->   Server::start(sockets): serves them
//                                   <- "taken"    HandoverClient::confirm()
//   "draining"                               ->   HandoverSource::listen(PATH): renamed
//   Server::drain(), exits                         over PATH, for the next one
//
// The old instance keeps its own copies open, and keeps accepting, until the new one
// says it serves them ("taken"): a new instance that fails before that leaves it as it
// was. Closing its copies afterwards resets nothing: the sockets live on in the new one.
// The old one drains only once "draining" is written; the new one steps back only on an
// explicit refusal ("error ..."): when the outcome is unclear (the old one closed or went
// silent after the sockets) the new one keeps serving, since two instances serving the
// same sockets lose nothing, while two draining would leave the port refusing.
// Every instance holds a shared flock() on PATH.lock for its lifetime: a fresh start
// (nothing answers at PATH) takes it exclusively first, so that an instance whose PATH
// was deleted is not silently joined by a second one binding beside it (SO_REUSEPORT).
// Every line is at most 512 bytes, every step bounded by HandoverOptions::timeout.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "netloop/clock.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/fd.hpp"
#include "netloop/io_watcher.hpp"
#include "netloop/result.hpp"
#include "netloop/server.hpp"

namespace netloop {

struct HandoverOptions {
  Duration timeout = seconds(10);  // connecting and receiving; then the confirmation
  size_t max_sockets = 4096;       // more from the old instance is a protocol error
  // The old instance's side (HandoverSource): the sockets went out but the swap did not
  // complete and the new instance is gone (it closed, refused or failed), so this
  // instance serves on. The new one may have changed what the sockets share (backlog,
  // accept deferral): a Server puts its own back with restore_socket_options(). Not
  // called when the new instance merely did not confirm in time (it may serve on beside
  // this one, with its own settings). Loop thread.
  std::function<void()> not_taken{};
};

// The new instance's side.
class HandoverClient {
 public:
  // Asks the instance at `path` for its listening sockets (blocking, up to the timeout:
  // call it before the loops run). Nothing there (no file, or a socket nobody listens
  // on: left behind by an instance that died) is no error: found() is false and the
  // caller binds as usual. Anything else (`path` is not a socket, or not the same user's,
  // the peer is another user's, refuses, sends garbage, closes early, takes too long) is
  // an error, `why` says what, and every descriptor received so far is closed. EBUSY:
  // nothing answers at `path` but an instance still holds `path`.lock (its socket file
  // was deleted): starting beside it would serve the port twice, for good. Either way
  // (found or not) the client holds `path`.lock shared: keep it (take_lock) while the
  // instance runs.
  static Result<std::unique_ptr<HandoverClient>> request(const std::string& path,
                                                         const HandoverOptions& options = {},
                                                         std::string* why = nullptr);
  ~HandoverClient();
  HandoverClient(const HandoverClient&) = delete;
  HandoverClient& operator=(const HandoverClient&) = delete;

  bool found() const noexcept { return channel_.valid(); }
  // The sockets received, for Server::start(); once.
  std::vector<ListeningSocket> take_sockets() { return std::move(sockets_); }
  // The shared lock on `path`.lock, to keep open for the instance's lifetime.
  Fd take_lock() { return std::move(lock_); }

  // On `loop`'s thread, once the sockets are served: tells the old instance, which then
  // drains. Never blocks: `done` runs on the loop with the outcome and, unless draining,
  // what happened. Destroying the client first cancels it (no call); so does closing it
  // unconfirmed (the old one then goes on serving).
  enum class Outcome : uint8_t {
    draining,  // the old one acknowledged: it drains
    refused,   // it said no ("error ..."): it goes on serving; step back
    unclear,   // it closed, went silent, or said something else: it may drain or be
               // gone, or serve on; keep serving (two serving lose nothing)
  };
  using Done = std::function<void(Outcome, const std::string& why)>;
  void confirm(EventLoop& loop, Done done);

 private:
  HandoverClient() = default;
  void on_reply();
  void finish(Outcome outcome, const std::string& why);

  HandoverOptions options_;
  Fd channel_;
  Fd lock_;
  std::vector<ListeningSocket> sockets_;
  std::unique_ptr<IoWatcher> watcher_;
  EventLoop* loop_ = nullptr;
  TimerId timer_;
  std::string reply_;
  Done done_;
};

// The running instance's side: a UNIX stream socket at a path, served on one loop with
// nonblocking I/O (a slow or stuck peer never stalls the loop), one handover at a time.
class HandoverSource {
 public:
  // What to pass (Server::listening_sockets, called on the loop's thread), and what to
  // do once the new instance serves them (Server::drain).
  using Provide = std::function<Result<std::vector<ListeningSocket>>()>;
  using Taken = std::function<void()>;

  // Listens at `path`: binds a temporary name beside it (`path`.new.PID, mode 0600) and
  // renames it over `path`, so the path never goes missing while one instance takes it
  // from another. Whatever socket is at `path` is replaced: call HandoverClient::request
  // first (it says whether someone answers there). EEXIST: `path` is something else
  // than a socket; ENAMETOOLONG: too long for a UNIX socket address.
  static Result<std::unique_ptr<HandoverSource>> listen(EventLoop& loop, const std::string& path,
                                                        Provide provide, Taken taken,
                                                        const HandoverOptions& options = {},
                                                        std::string* why = nullptr);
  // Loop thread; removes `path` if it is still this one's socket and no sockets were
  // ever passed from it (a successor renames its own over it: never remove that one).
  ~HandoverSource();
  HandoverSource(const HandoverSource&) = delete;
  HandoverSource& operator=(const HandoverSource&) = delete;

  const std::string& path() const noexcept { return path_; }
  bool handed_over() const noexcept { return handed_over_; }

 private:
  struct Session;
  HandoverSource(EventLoop& loop, std::string path, Fd fd, Provide provide, Taken taken,
                 const HandoverOptions& options);
  void on_accept();
  void on_session(uint32_t ready);
  // why empty: the swap completed. new_instance_gone false: it may still be serving.
  void end_session(const std::string& why, bool new_instance_gone = true);
  bool read_session_input();
  bool write_session_output();

  EventLoop& loop_;
  std::string path_;
  Fd fd_;
  IoWatcher watcher_;
  Provide provide_;
  Taken taken_;
  HandoverOptions options_;
  dev_t dev_ = 0;  // of the socket file at path_, to tell it from a successor's
  ino_t ino_ = 0;
  bool handed_over_ = false;
  bool passed_ = false;  // sockets went out at least once: `path` may be a successor's
  TimerId retry_timer_;  // accepting paused after a failure (EMFILE)
  std::unique_ptr<Session> session_;
};

}  // namespace netloop
