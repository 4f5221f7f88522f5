// MemoryLoop: an EventLoop on a poller that never has events, with a clock that moves
// only in advance().
#include "netloop/testing/memory_loop.hpp"

#include <algorithm>
#include <mutex>

#include "netloop/log.hpp"
#include "netloop/testing/memory_connection.hpp"

namespace netloop::testing {
namespace {

// Nothing is registered with it: in-memory connections report their own events.
class NoPoller final : public Poller {
 public:
  std::string_view name() const noexcept override { return "memory"; }
  Result<void> add(int, Interest, void*) override { return make_error(ENOTSUP); }
  Result<void> modify(int, Interest, void*) override { return make_error(ENOTSUP); }
  Result<void> remove(int) override { return {}; }
  Result<size_t> wait(std::span<PollEvent>, int) override { return size_t(0); }
};

}  // namespace

MemoryLoop::MemoryLoop() : loop_(new EventLoop(std::make_unique<NoPoller>())) {
  loop_->now_ = TimePoint{};
}

MemoryLoop::~MemoryLoop() = default;

void MemoryLoop::detach(MemoryConnection* c) noexcept { std::erase(connections_, c); }

void MemoryLoop::settle() {
  if (settling_) return;  // a driving call made from inside a callback: the outer one settles
  settling_ = true;
  // Bounded: a handler that keeps deferring more work would otherwise hang the test.
  for (int round = 0; round < 1'000'000; ++round) {
    bool busy = false;
    if (!loop_->deferred_.empty() || !loop_->graveyard_.empty()) {
      loop_->run_deferred();
      busy = true;
    }
    bool posted = false;
    {
      std::lock_guard lock(loop_->posted_mutex_);
      posted = !loop_->posted_.empty();
    }
    if (posted) {
      loop_->run_posted();
      busy = true;
    }
    // Index loop: a callback may close (not destroy) other connections.
    for (size_t i = 0; i < connections_.size(); ++i) busy = connections_[i]->pump() || busy;
    if (!busy) break;
    if (round == 999'999) log_error("MemoryLoop: still busy after a million rounds; giving up");
  }
  settling_ = false;
}

void MemoryLoop::advance(Duration d) {
  Driving driving(*this);
  TimePoint target = loop_->now_ + d;
  settle();
  for (;;) {
    auto next = loop_->timers_.next_deadline();
    if (!next || *next > target) break;
    loop_->now_ = std::max(loop_->now_, *next);
    loop_->timers_.run_due(loop_->now_);
    settle();
  }
  loop_->now_ = target;
}

}  // namespace netloop::testing
