// EMFILE: a listener whose process is out of descriptors sheds pending connections and
// does not spin; once descriptors are back, it accepts again.
//
// Runs the loop on the test thread (run_once) so no other thread races for descriptors.
#include "support.hpp"

#include <filesystem>
#include <sys/resource.h>

using namespace nltest;

namespace {

size_t open_descriptors() {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n > 0 ? n - 1 : 0;  // the iterator's own descriptor
}

// Lowers RLIMIT_NOFILE and fills the table; restores both on every path.
class DescriptorSqueeze {
 public:
  DescriptorSqueeze() { ::getrlimit(RLIMIT_NOFILE, &saved_); }
  ~DescriptorSqueeze() { release(); }

  // Returns an empty string on success, or what went wrong.
  std::string squeeze(size_t headroom) {
    rlimit lower = saved_;
    lower.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, rlim_t(open_descriptors() + headroom));
    if (::setrlimit(RLIMIT_NOFILE, &lower) < 0)
      return std::string("setrlimit: ") + std::strerror(errno);
    lowered_ = true;
    int base = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (base < 0) return std::string("open /dev/null: ") + std::strerror(errno);
    dups_.push_back(base);
    for (int i = 0; i < 100000; ++i) {
      int d = ::fcntl(base, F_DUPFD_CLOEXEC, 0);
      if (d < 0) {
        if (errno == EMFILE) return {};
        return std::string("dup: ") + std::strerror(errno);
      }
      dups_.push_back(d);
    }
    return "never reached EMFILE";
  }

  size_t held() const { return dups_.size(); }

  void release() {
    for (int d : dups_) ::close(d);
    dups_.clear();
    if (lowered_) ::setrlimit(RLIMIT_NOFILE, &saved_);
    lowered_ = false;
  }

 private:
  rlimit saved_{};
  bool lowered_ = false;
  std::vector<int> dups_;
};

void emfile(const std::string& backend) {
  std::string why;
  auto loop_r = netloop::EventLoop::create(backend, &why);
  REQUIRE_MESSAGE(loop_r.ok(), why);
  auto& loop = **loop_r;
  auto l_r = netloop::TcpListener::listen(loop, netloop::Address::ipv4_loopback(0),
                                          netloop::echo::tcp_echo_factory());
  REQUIRE_MESSAGE(l_r.ok(), l_r.error().message());
  auto& listener = **l_r;
  const auto address = listener.local_address();

  // Before anything else, one ordinary echo: the listener works, and every code path
  // the squeeze below will run has run once (UBSan's vptr check, on a cache miss, needs
  // a pipe: with no descriptor left it would report false positives).
  {
    Sock s = connect_to(address, {.timeout = 3s});
    REQUIRE(s.valid());
    REQUIRE(send_all(s.get(), "warm-up"));
    set_nonblocking(s.get());
    std::string got;
    const auto t = SteadyClock::now();
    while (got.size() < 7 && SteadyClock::now() - t < 5s) {
      loop.run_once(20);
      char buf[16];
      ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
      if (n > 0) got.append(buf, size_t(n));
      if (n == 0) break;
    }
    REQUIRE(got == "warm-up");
    s.reset();
    const auto t2 = SteadyClock::now();
    while (listener.connection_count() != 0 && SteadyClock::now() - t2 < 3s) loop.run_once(20);
    REQUIRE(listener.connection_count() == 0);
  }

  // Clients connected before the table fills: they wait in the listen backlog.
  constexpr int kEarly = 3;
  std::vector<Sock> early;
  for (int i = 0; i < kEarly; ++i) {
    early.push_back(connect_to(address, {.timeout = 3s}));
    REQUIRE_MESSAGE(early.back().valid(), std::strerror(errno));
  }

  // While the table is full, only plain variables are touched: the checks come after the
  // descriptors are back (sanitizer runtimes and doctest's reporting may need one).
  std::string squeeze_error;
  int probe_errno = 0;
  uint64_t iters = 0;
  size_t held = 0;
  netloop::ListenerStats during{};
  size_t conns_during = 0;
  {
    DescriptorSqueeze squeeze;
    squeeze_error = squeeze.squeeze(20);
    held = squeeze.held();
    if (squeeze_error.empty()) {
      // Confirm the table is full.
      int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      probe_errno = probe < 0 ? errno : 0;
      if (probe >= 0) ::close(probe);

      const uint64_t it0 = loop.iterations();
      const auto t0 = SteadyClock::now();
      while (SteadyClock::now() - t0 < 300ms) loop.run_once(50);
      iters = loop.iterations() - it0;
      during = listener.stats();
      conns_during = listener.connection_count();
    }
  }  // descriptors and the limit are back
  REQUIRE_MESSAGE(squeeze_error.empty(), squeeze_error);
  REQUIRE_MESSAGE(probe_errno == EMFILE, "descriptors still available after the squeeze");
  MESSAGE(backend << ": " << iters << " loop iterations in 300 ms out of descriptors; "
                  << "dropped " << during.dropped_no_fds << ", held " << held);
  CHECK_MESSAGE(iters < 200, "the loop spun while out of descriptors");
  CHECK(during.dropped_no_fds >= 1);
  CHECK(during.accepted == 1);  // the warm-up client
  CHECK(conns_during == 0);

  // The shed clients see their connection end (EOF, or a reset).
  for (auto& s : early) {
    Ending e = wait_end(s.get(), 3s);
    CAPTURE(to_cstr(e));
    CHECK((e == Ending::eof || e == Ending::reset));
  }
  CHECK(listener.stats().dropped_no_fds == kEarly);

  // A new client is served once descriptors are back (the listener may still be in its
  // short accept pause: keep turning the loop).
  Sock s = connect_to(address, {.timeout = 3s});
  REQUIRE(s.valid());
  REQUIRE(send_all(s.get(), "after emfile"));
  set_nonblocking(s.get());
  std::string got;
  const auto t1 = SteadyClock::now();
  while (got.size() < 12 && SteadyClock::now() - t1 < 5s) {
    loop.run_once(20);
    char buf[64];
    ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
    if (n > 0) got.append(buf, size_t(n));
    if (n == 0) break;
  }
  CHECK(got == "after emfile");
  CHECK(listener.stats().accepted == 2);
  CHECK(listener.connection_count() == 1);

  // Idle, the loop does not spin either.
  const uint64_t it1 = loop.iterations();
  const auto t2 = SteadyClock::now();
  while (SteadyClock::now() - t2 < 200ms) loop.run_once(50);
  CHECK(loop.iterations() - it1 < 50);

  s.reset();
  const auto t3 = SteadyClock::now();
  while (listener.connection_count() != 0 && SteadyClock::now() - t3 < 3s) loop.run_once(20);
  CHECK(listener.connection_count() == 0);
}

}  // namespace

TEST_CASE("EMFILE: accept sheds connections without spinning, then recovers") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    emfile(backend);
  }
}
