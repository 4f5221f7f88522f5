// Signals as loop callbacks: an async-signal-safe handler writes the signal number into
// a self-pipe; the owning loop reads it and runs the callbacks on its own thread.
#include "signal_pipe.hpp"

#include <atomic>
#include <csignal>
#include <cstring>
#include <unistd.h>

#include "netloop/event_loop.hpp"
#include "netloop/io_watcher.hpp"

namespace netloop {
namespace {

std::atomic<int> g_write_fd{-1};
std::atomic<EventLoop*> g_owner{nullptr};
struct Saved {
  int signo;
  struct sigaction old;
};
Saved g_saved[64];
int g_saved_count = 0;

extern "C" void on_signal_raw(int signo) {
  int saved_errno = errno;
  unsigned char b = static_cast<unsigned char>(signo);
  int fd = g_write_fd.load(std::memory_order_relaxed);
  if (fd >= 0) [[maybe_unused]] auto r = ::write(fd, &b, 1);  // full pipe: signal coalesced
  errno = saved_errno;
}

}  // namespace

void release_signal_pipe(EventLoop* owner) noexcept {
  EventLoop* expected = owner;
  if (!g_owner.compare_exchange_strong(expected, nullptr)) return;
  for (int i = 0; i < g_saved_count; ++i) ::sigaction(g_saved[i].signo, &g_saved[i].old, nullptr);
  g_saved_count = 0;
  int fd = g_write_fd.exchange(-1);
  if (fd >= 0) ::close(fd);
}

Result<void> EventLoop::on_signal(int signo, std::function<void()> fn) {
  assert_in_loop_thread();
  if (signo <= 0 || signo >= 64) return make_error(EINVAL);
  EventLoop* expected = nullptr;
  if (!g_owner.compare_exchange_strong(expected, this) && expected != this)
    return make_error(EBUSY);
  if (!signal_read_) {
    int p[2];
    if (::pipe(p) < 0) {
      g_owner.store(nullptr);
      return last_error();
    }
    signal_read_.reset(p[0]);
    set_nonblocking_cloexec(p[0]);
    set_nonblocking_cloexec(p[1]);
    g_write_fd.store(p[1]);
    signal_watcher_ = std::make_unique<IoWatcher>(*this, [this](uint32_t) { on_signal_pipe(); });
    if (auto r = signal_watcher_->start(signal_read_.get(), Interest::read); !r) return r.error();
  }
  bool installed = false;
  for (auto& h : signal_handlers_) installed |= h.first == signo;
  if (!installed && g_saved_count < 64) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_raw;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    g_saved[g_saved_count].signo = signo;
    if (::sigaction(signo, &sa, &g_saved[g_saved_count].old) < 0) return last_error();
    ++g_saved_count;
  }
  signal_handlers_.emplace_back(signo, std::move(fn));
  return {};
}

void EventLoop::on_signal_pipe() {
  unsigned char buf[64];
  ssize_t n;
  while ((n = ::read(signal_read_.get(), buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i)
      for (size_t k = 0; k < signal_handlers_.size(); ++k)  // a callback may add handlers
        if (signal_handlers_[k].first == buf[i]) {
          auto fn = signal_handlers_[k].second;  // a copy: the callback may add handlers
          fn();
        }
  }
}

}  // namespace netloop
