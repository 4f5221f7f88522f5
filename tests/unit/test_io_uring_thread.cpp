// An io_uring ring that runs its deferred work only when its thread waits takes
// submissions from one thread only. A loop created on one thread and run on another (as
// Server does) works; a loop that has waited on one thread and is then run on another
// stops with an error at once instead of spinning on it. Built only where io_uring is
// compiled in; skipped where the kernel refuses it.
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "netloop/event_loop.hpp"
#include "netloop/poller.hpp"

using namespace netloop;
using namespace std::chrono_literals;

namespace {

// A loop on io_uring, or null (with a message) where this kernel cannot run it.
std::unique_ptr<EventLoop> uring_loop() {
  bool usable = false;
  for (const auto& b : available_backends())
    if (b.name == "io_uring") usable = b.available;
  if (!usable) {
    MESSAGE("io_uring is not available here");
    return nullptr;
  }
  std::string why;
  auto l = EventLoop::create("io_uring", &why);
  REQUIRE_MESSAGE(l.ok(), why);
  return std::move(*l);
}

}  // namespace

TEST_CASE("io_uring: a loop created on one thread runs on another") {
  auto owned = uring_loop();
  if (!owned) return;
  EventLoop& loop = *owned;
  bool ran = false;
  loop.post([&] {
    ran = true;
    loop.stop();
  });
  auto done = std::async(std::launch::async, [&] { loop.run(); });
  REQUIRE_MESSAGE(done.wait_for(5s) == std::future_status::ready, "the loop did not run its posted work");
  CHECK(ran);
}

TEST_CASE("io_uring: a loop moved to a second thread stops with an error, it does not spin") {
  auto owned = uring_loop();
  if (!owned) return;
  EventLoop& loop = *owned;
  loop.run_once(0);  // this thread is now the ring's only submitter
  const uint64_t before = loop.iterations();
  auto done = std::async(std::launch::async, [&] { loop.run(); });
  if (done.wait_for(5s) != std::future_status::ready) {
    loop.stop();
    done.wait();
    FAIL("run() on a second thread did not return: it spun for 5 s ("
         << loop.iterations() - before << " iterations)");
  }
  CHECK(loop.iterations() - before <= 2);
#ifdef NDEBUG
  // The first thread can still use the ring. (A debug build asserts instead: the loop is
  // bound to the thread that ran it, and stays so.)
  loop.run_once(0);
#endif
}
