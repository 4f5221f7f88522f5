// netloop::testing::MemoryLoop: a real EventLoop whose clock moves only when told, for
// driving in-memory connections (MemoryConnection) in tests.
//
// Several connections on one MemoryLoop share its clock, its timers and its deferred work,
// as connections on one real loop do: a chat room or a store with expiry is tested on one
// clock. The loop must outlive its connections.
//
//   MemoryLoop loop;
//   MemoryConnection a(loop, room.make_handler()), b(loop, room.make_handler());
//   a.feed("hello\n");
//   CHECK(b.take_output() == "a: hello\n");
//   loop.advance(seconds(30));  // both connections' timers fire, in deadline order
#pragma once

#include <memory>
#include <vector>

#include "netloop/clock.hpp"
#include "netloop/event_loop.hpp"

namespace netloop::testing {

class MemoryConnection;

class MemoryLoop {
 public:
  MemoryLoop();
  ~MemoryLoop();
  MemoryLoop(const MemoryLoop&) = delete;
  MemoryLoop& operator=(const MemoryLoop&) = delete;

  EventLoop& loop() noexcept { return *loop_; }
  TimePoint now() const noexcept { return loop_->now(); }

  // Moves the clock forward by `d`, firing every timer that falls due on the way, each at
  // its own deadline and in deadline order; the work each one causes (deferred calls, I/O
  // the in-memory peers have ready) runs before the next.
  void advance(Duration d);
  // Runs what is ready until nothing is: deferred work, posted functions, and the I/O
  // every in-memory connection's peer has made ready. The driving calls of
  // MemoryConnection end with it; call it after acting on a connection directly.
  void settle();

 private:
  friend class MemoryConnection;
  // A driving call (feed, advance...) is running: closes and re-deliveries asked for on
  // the way wait for its end, as a real loop's wait for the end of its batch.
  struct Driving {
    explicit Driving(MemoryLoop& l) : loop(l) { ++loop.driving_; }
    ~Driving() {
      if (--loop.driving_ == 0) loop.settle();
    }
    MemoryLoop& loop;
  };
  // Nothing is running: a call the test makes on a connection directly (close(), say)
  // completes at once.
  bool idle() const noexcept { return driving_ == 0 && !settling_; }
  void attach(MemoryConnection* c) { connections_.push_back(c); }
  void detach(MemoryConnection* c) noexcept;

  std::unique_ptr<EventLoop> loop_;
  std::vector<MemoryConnection*> connections_;
  int driving_ = 0;
  bool settling_ = false;
};

}  // namespace netloop::testing
