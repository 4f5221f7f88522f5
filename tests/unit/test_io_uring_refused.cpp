// When the kernel refuses io_uring (a seccomp filter here, as container runtimes install;
// kernel.io_uring_disabled does the same), the backend reports itself unavailable with the
// reason, creating it fails with a message naming the alternatives, and the default falls
// back to another backend. Built only where io_uring is compiled in.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstddef>
#include <string>

#include <sys/syscall.h>

#include "netloop/event_loop.hpp"
#include "netloop/poller.hpp"
#include "seccomp_refuse.hpp"

using namespace netloop;

TEST_CASE("io_uring refused by the kernel: reported unavailable, and the default falls back") {
  // The probe's verdict is cached: the filter must be in place before anything asks.
  REQUIRE(nltest::refuse_syscall(__NR_io_uring_setup, EPERM));

  bool listed = false;
  for (const auto& b : available_backends()) {
    if (b.name != "io_uring") continue;
    listed = true;
    CHECK_FALSE(b.available);
    INFO("reason: " << b.reason);
    CHECK(b.reason.find("refused") != std::string::npos);
    CHECK(b.reason.find("io_uring_disabled") != std::string::npos);
  }
  CHECK(listed);

  std::string why;
  auto p = create_poller("io_uring", &why);
  CHECK_FALSE(p.ok());
  INFO("why: " << why);
  CHECK(why.find("unavailable") != std::string::npos);
  CHECK(why.find("epoll") != std::string::npos);  // names what would work

  CHECK(default_backend() != "io_uring");
  auto loop = EventLoop::create();
  REQUIRE(loop.ok());
  CHECK((*loop)->backend_name() != "io_uring");
}
