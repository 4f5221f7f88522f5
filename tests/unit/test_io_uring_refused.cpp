// When the kernel refuses io_uring (a seccomp filter here, as container runtimes install;
// kernel.io_uring_disabled does the same), the backend reports itself unavailable with the
// reason, creating it fails with a message naming the alternatives, and the default falls
// back to another backend. Built only where io_uring is compiled in.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstddef>
#include <string>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "netloop/event_loop.hpp"
#include "netloop/poller.hpp"

using namespace netloop;

namespace {

void refuse_io_uring_setup() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  REQUIRE(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
  REQUIRE(::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
}

}  // namespace

TEST_CASE("io_uring refused by the kernel: reported unavailable, and the default falls back") {
  // The probe's verdict is cached: the filter must be in place before anything asks.
  refuse_io_uring_setup();

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
