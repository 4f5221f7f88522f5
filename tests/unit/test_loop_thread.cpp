// A loop is bound to the thread that runs it, from its first run() until it is destroyed.
#include <doctest/doctest.h>

#include <thread>

#include "netloop/event_loop.hpp"

TEST_CASE("a loop stays bound to the thread that ran it, after run() returns too") {
  auto created = netloop::EventLoop::create();
  REQUIRE(created);
  netloop::EventLoop& loop = **created;
  CHECK(loop.in_loop_thread());  // not run yet: whoever holds it sets it up
  bool inside = false;
  std::thread runner([&] {
    loop.post([&] {
      inside = loop.in_loop_thread();
      loop.stop();
    });
    loop.run();
  });
  runner.join();
  CHECK(inside);
  CHECK_FALSE(loop.in_loop_thread());  // bound to the runner, gone or not: use post()
  created->reset();  // destroying it is the owner's business, from any thread
}
