// Unit tests for TimerQueue (lib/src/timer_queue.cpp) on a fake clock: ordering, ties,
// repeats, cancel and restart (including from inside callbacks), stale ids, and a
// 10,000-timer randomized run checked against sorted order.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "netloop/timer_queue.hpp"

using netloop::Duration;
using netloop::TimePoint;
using netloop::TimerId;
using netloop::TimerQueue;
using std::chrono::milliseconds;

namespace {

// Fake time: an arbitrary epoch plus `ms` milliseconds.
TimePoint t(int64_t ms) { return TimePoint{} + std::chrono::hours(1) + milliseconds(ms); }
Duration ms(int64_t n) { return milliseconds(n); }
constexpr Duration kOnce = Duration::zero();

}  // namespace

// Fake time points print as their offset from t(0), so failures are readable.
namespace doctest {
template <>
struct StringMaker<TimePoint> {
  static String convert(const TimePoint& tp) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(tp - t(0)).count();
    return ("t(" + std::to_string(us / 1000) + "." + std::to_string(us % 1000 / 100) + " ms)").c_str();
  }
};
}  // namespace doctest

TEST_CASE("timer queue: an empty queue has no deadline and runs nothing") {
  TimerQueue q;
  CHECK(q.empty());
  CHECK(q.size() == 0);
  CHECK_FALSE(q.next_deadline().has_value());
  CHECK(q.run_due(t(1'000'000)) == 0);
  CHECK_FALSE(q.pending(TimerId{}));
  CHECK_FALSE(q.cancel(TimerId{}));
  CHECK_FALSE(q.restart(TimerId{}, t(0)));
  CHECK_FALSE(TimerId{});  // a default id names no timer
}

TEST_CASE("timer queue: timers run in deadline order, only once due") {
  TimerQueue q;
  std::vector<int> order;
  // Inserted out of order.
  for (int d : {50, 10, 40, 20, 30}) {
    TimerId id = q.add(t(d), kOnce, [&order, d] { order.push_back(d); });
    CHECK(bool(id));
    CHECK(q.pending(id));
  }
  CHECK(q.size() == 5);
  REQUIRE(q.next_deadline().has_value());
  CHECK(*q.next_deadline() == t(10));

  CHECK(q.run_due(t(9)) == 0);
  CHECK(order.empty());
  CHECK(q.run_due(t(10)) == 1);  // a deadline equal to now is due
  CHECK(order == std::vector<int>{10});
  CHECK(*q.next_deadline() == t(20));
  CHECK(q.run_due(t(35)) == 2);
  CHECK(order == std::vector<int>{10, 20, 30});
  CHECK(q.run_due(t(1000)) == 2);
  CHECK(order == std::vector<int>{10, 20, 30, 40, 50});
  CHECK(q.empty());
  CHECK_FALSE(q.next_deadline().has_value());
  CHECK(q.run_due(t(2000)) == 0);
}

TEST_CASE("timer queue: equal deadlines run in insertion order") {
  TimerQueue q;
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) q.add(t(5), kOnce, [&order, i] { order.push_back(i); });
  // Interleave some other deadlines to disturb the heap.
  for (int i = 0; i < 20; ++i) q.add(t(i % 2 ? 1 : 9), kOnce, [&order, i] { order.push_back(1000 + i); });
  for (int i = 100; i < 150; ++i) q.add(t(5), kOnce, [&order, i] { order.push_back(i); });
  CHECK(q.run_due(t(100)) == 170);

  std::vector<int> expect;
  for (int i = 1; i < 20; i += 2) expect.push_back(1000 + i);  // t(1)
  for (int i = 0; i < 150; ++i) expect.push_back(i);           // t(5), in insertion order
  for (int i = 0; i < 20; i += 2) expect.push_back(1000 + i);  // t(9)
  CHECK(order == expect);
}

TEST_CASE("timer queue: a repeating timer fires every interval until cancelled") {
  TimerQueue q;
  int runs = 0;
  TimerId id = q.add(t(10), ms(10), [&] { ++runs; });
  CHECK(q.run_due(t(9)) == 0);
  CHECK(q.run_due(t(10)) == 1);
  CHECK(runs == 1);
  CHECK(q.pending(id));
  CHECK(q.size() == 1);
  CHECK(*q.next_deadline() == t(20));
  CHECK(q.run_due(t(15)) == 0);
  CHECK(q.run_due(t(20)) == 1);
  CHECK(q.run_due(t(30)) == 1);
  CHECK(runs == 3);
  CHECK(*q.next_deadline() == t(40));

  CHECK(q.cancel(id));
  CHECK_FALSE(q.pending(id));
  CHECK(q.empty());
  CHECK(q.run_due(t(100)) == 0);
  CHECK(runs == 3);
  CHECK_FALSE(q.cancel(id));
}

TEST_CASE("timer queue: a zero or negative repeat means one-shot") {
  TimerQueue q;
  int a = 0, b = 0;
  TimerId ia = q.add(t(1), Duration::zero(), [&] { ++a; });
  TimerId ib = q.add(t(1), -ms(5), [&] { ++b; });
  CHECK(q.run_due(t(1)) == 2);
  CHECK(q.run_due(t(100)) == 0);
  CHECK(a == 1);
  CHECK(b == 1);
  CHECK_FALSE(q.pending(ia));
  CHECK_FALSE(q.pending(ib));
  CHECK(q.empty());
}

TEST_CASE("timer queue: a repeating timer that ran late is not due again at once") {
  // Due at 10 with a 10 ms interval, but the loop only got to it at 35: it fires once
  // (missed ticks are not replayed) and the next firing is a full interval later, or
  // at the next tick of its schedule (40) - never right away.
  TimerQueue q;
  int runs = 0;
  q.add(t(10), ms(10), [&] { ++runs; });
  CHECK(q.run_due(t(35)) == 1);
  CHECK(runs == 1);
  REQUIRE(q.next_deadline().has_value());
  CHECK(*q.next_deadline() >= t(40));
  CHECK(q.run_due(t(36)) == 0);
  CHECK(runs == 1);
}

TEST_CASE("timer queue: cancel") {
  TimerQueue q;
  int ran_a = 0, ran_b = 0;
  TimerId a = q.add(t(10), kOnce, [&] { ++ran_a; });
  TimerId b = q.add(t(20), kOnce, [&] { ++ran_b; });
  CHECK_FALSE(a == b);

  SUBCASE("before it fires: it never runs, and a second cancel is refused") {
    CHECK(q.cancel(a));
    CHECK_FALSE(q.pending(a));
    CHECK(q.size() == 1);
    CHECK(*q.next_deadline() == t(20));
    CHECK_FALSE(q.cancel(a));
    CHECK(q.run_due(t(100)) == 1);
    CHECK(ran_a == 0);
    CHECK(ran_b == 1);
  }
  SUBCASE("after a one-shot fired: returns false and harms nothing") {
    CHECK(q.run_due(t(10)) == 1);
    CHECK(ran_a == 1);
    CHECK_FALSE(q.pending(a));
    CHECK_FALSE(q.cancel(a));
    CHECK(q.pending(b));
    CHECK(q.run_due(t(100)) == 1);
    CHECK(ran_b == 1);
  }
  SUBCASE("ids that name no timer are ignored") {
    CHECK_FALSE(q.cancel(TimerId{}));
    CHECK_FALSE(q.cancel(TimerId{12345}));
    CHECK_FALSE(q.cancel(TimerId{(uint64_t(7) << 32) | 1}));  // right slot, wrong generation
    CHECK(q.size() == 2);
    CHECK(q.run_due(t(100)) == 2);
  }
}

TEST_CASE("timer queue: a stale id whose slot was reused is ignored") {
  TimerQueue q;
  int old_runs = 0, new_runs = 0;

  SUBCASE("slot freed by cancel") {
    TimerId old_id = q.add(t(10), kOnce, [&] { ++old_runs; });
    REQUIRE(q.cancel(old_id));
    TimerId new_id = q.add(t(20), kOnce, [&] { ++new_runs; });
    CHECK_FALSE(new_id == old_id);
    CHECK_FALSE(q.pending(old_id));
    CHECK(q.pending(new_id));
    CHECK_FALSE(q.cancel(old_id));          // must not cancel the new timer
    CHECK_FALSE(q.restart(old_id, t(1)));   // must not move it either
    CHECK(q.pending(new_id));
    CHECK(*q.next_deadline() == t(20));
    CHECK(q.run_due(t(100)) == 1);
  }
  SUBCASE("slot freed by firing") {
    TimerId old_id = q.add(t(10), kOnce, [&] { ++old_runs; });
    REQUIRE(q.run_due(t(10)) == 1);
    TimerId new_id = q.add(t(20), kOnce, [&] { ++new_runs; });
    CHECK_FALSE(new_id == old_id);
    CHECK_FALSE(q.cancel(old_id));
    CHECK(q.pending(new_id));
    CHECK(q.run_due(t(100)) == 1);
    CHECK(old_runs == 1);
  }
  SUBCASE("many reuses of one slot") {
    std::vector<TimerId> dead;
    for (int i = 0; i < 1000; ++i) {
      TimerId id = q.add(t(i), kOnce, [&] { ++old_runs; });
      REQUIRE(q.cancel(id));
      dead.push_back(id);
    }
    TimerId live = q.add(t(5), kOnce, [&] { ++new_runs; });
    for (TimerId id : dead) REQUIRE_FALSE(q.cancel(id));
    CHECK(q.pending(live));
    CHECK(q.run_due(t(100)) == 1);
  }
  CHECK(new_runs == 1);
  CHECK(q.empty());
}

TEST_CASE("timer queue: restart moves the deadline later and earlier") {
  TimerQueue q;
  std::vector<char> order;
  TimerId a = q.add(t(10), kOnce, [&] { order.push_back('a'); });
  TimerId b = q.add(t(20), kOnce, [&] { order.push_back('b'); });
  TimerId c = q.add(t(30), kOnce, [&] { order.push_back('c'); });

  CHECK(q.restart(a, t(25)));  // later: now after b
  CHECK(*q.next_deadline() == t(20));
  CHECK(q.pending(b));
  CHECK(q.restart(c, t(5)));   // earlier: now first
  CHECK(*q.next_deadline() == t(5));
  CHECK(q.pending(a));
  CHECK(q.size() == 3);

  CHECK(q.run_due(t(10)) == 1);  // a no longer fires at 10
  CHECK(order == std::vector<char>{'c'});
  CHECK(q.run_due(t(100)) == 2);
  CHECK(order == std::vector<char>{'c', 'b', 'a'});

  CHECK_FALSE(q.restart(a, t(200)));  // fired: nothing to move
  CHECK(q.empty());

  // A repeating timer keeps its interval after a restart.
  int runs = 0;
  TimerId r = q.add(t(110), ms(10), [&] { ++runs; });
  CHECK(q.restart(r, t(150)));
  CHECK(q.run_due(t(140)) == 0);
  CHECK(q.run_due(t(150)) == 1);
  CHECK(*q.next_deadline() == t(160));
  CHECK(runs == 1);
}

TEST_CASE("timer queue: callbacks may cancel themselves") {
  TimerQueue q;
  SUBCASE("one-shot: it already fired, so cancel says false") {
    TimerId self{};
    std::optional<bool> cancelled;
    std::optional<bool> pending_inside;
    self = q.add(t(1), kOnce, [&] {
      pending_inside = q.pending(self);
      cancelled = q.cancel(self);
    });
    CHECK(q.run_due(t(1)) == 1);
    REQUIRE(cancelled.has_value());
    CHECK_FALSE(*cancelled);
    CHECK_FALSE(*pending_inside);
    CHECK(q.empty());
  }
  SUBCASE("repeating: cancel stops it for good") {
    TimerId self{};
    int runs = 0;
    bool cancelled = false;
    self = q.add(t(1), ms(1), [&] {
      if (++runs == 3) cancelled = q.cancel(self);
    });
    for (int now = 1; now <= 20; ++now) q.run_due(t(now));
    CHECK(runs == 3);
    CHECK(cancelled);
    CHECK_FALSE(q.pending(self));
    CHECK(q.empty());
  }
  SUBCASE("repeating: restart from inside moves the next firing") {
    TimerId self{};
    std::vector<int> at;
    int now = 0;
    self = q.add(t(10), ms(10), [&] {
      at.push_back(now);
      if (at.size() == 1) CHECK(q.restart(self, t(100)));
    });
    for (now = 0; now <= 125; ++now) q.run_due(t(now));
    CHECK(at == std::vector<int>{10, 100, 110, 120});
  }
  SUBCASE("repeating: cancel itself, then add a timer that reuses its slot") {
    TimerId self{};
    int old_runs = 0, new_runs = 0;
    TimerId fresh{};
    self = q.add(t(1), ms(1), [&] {
      ++old_runs;
      CHECK(q.cancel(self));
      fresh = q.add(t(50), kOnce, [&] { ++new_runs; });
    });
    CHECK(q.run_due(t(1)) == 1);
    CHECK(q.pending(fresh));
    CHECK_FALSE(q.pending(self));
    CHECK(q.run_due(t(49)) == 0);
    CHECK(q.run_due(t(50)) == 1);  // the new timer's own callback, not the old one
    CHECK(old_runs == 1);
    CHECK(new_runs == 1);
    CHECK(q.empty());
  }
}

TEST_CASE("timer queue: a callback may cancel another timer") {
  TimerQueue q;
  int ran_b = 0, ran_c = 0;
  TimerId b{}, c{};
  bool cancel_b = false, cancel_c = false;
  q.add(t(10), kOnce, [&] {
    cancel_b = q.cancel(b);  // due in this same run_due
    cancel_c = q.cancel(c);  // due later
  });
  b = q.add(t(10), kOnce, [&] { ++ran_b; });
  c = q.add(t(50), ms(5), [&] { ++ran_c; });
  CHECK(q.run_due(t(10)) == 1);
  CHECK(cancel_b);
  CHECK(cancel_c);
  CHECK(q.run_due(t(100)) == 0);
  CHECK(ran_b == 0);
  CHECK(ran_c == 0);
  CHECK(q.empty());
}

TEST_CASE("timer queue: a zero-delay timer that re-arms itself does not livelock run_due") {
  TimerQueue q;
  int runs = 0;
  std::function<void()> again = [&] {
    ++runs;
    q.add(t(0), kOnce, again);
  };
  q.add(t(0), kOnce, again);
  CHECK(q.run_due(t(1)) == 1);
  CHECK(q.run_due(t(1)) == 1);
  CHECK(runs == 2);
}

TEST_CASE("timer queue: a callback may add timers") {
  TimerQueue q;
  std::vector<std::string> log;
  q.add(t(10), kOnce, [&] {
    log.push_back("first");
    // Timers armed by a callback never run in the same call, even when already due: a
    // callback re-arming itself for "now" must not keep run_due() from returning.
    q.add(t(5), kOnce, [&] { log.push_back("already due"); });
    q.add(t(10), kOnce, [&] { log.push_back("due now"); });
    q.add(t(11), kOnce, [&] { log.push_back("later"); });
  });
  CHECK(q.run_due(t(10)) == 1);
  CHECK(log == std::vector<std::string>{"first"});
  CHECK(*q.next_deadline() == t(5));
  CHECK(q.run_due(t(10)) == 2);  // the next call (the loop's next turn) runs them
  CHECK(log == std::vector<std::string>{"first", "already due", "due now"});
  CHECK(*q.next_deadline() == t(11));
  CHECK(q.run_due(t(11)) == 1);
  CHECK(log.back() == "later");

  // A repeating callback that adds many timers (the slot table reallocates while it
  // runs) keeps its own callback and keeps repeating.
  int rep = 0, added_ran = 0;
  TimerId r = q.add(t(20), ms(10), [&] {
    ++rep;
    if (rep == 1)
      for (int i = 0; i < 1000; ++i) q.add(t(1000 + i), kOnce, [&] { ++added_ran; });
  });
  CHECK(q.run_due(t(20)) == 1);
  CHECK(q.size() == 1001);
  CHECK(q.run_due(t(30)) == 1);
  CHECK(q.run_due(t(40)) == 1);
  CHECK(rep == 3);
  CHECK(q.cancel(r));
  CHECK(q.run_due(t(5000)) == 1000);
  CHECK(added_ran == 1000);
  CHECK(q.empty());
}

TEST_CASE("timer queue: next_deadline follows adds, cancels and runs") {
  TimerQueue q;
  TimerId x = q.add(t(30), kOnce, [] {});
  CHECK(*q.next_deadline() == t(30));
  TimerId y = q.add(t(20), kOnce, [] {});
  CHECK(*q.next_deadline() == t(20));
  q.add(t(40), kOnce, [] {});
  CHECK(*q.next_deadline() == t(20));
  CHECK(q.cancel(y));
  CHECK(*q.next_deadline() == t(30));
  CHECK(q.restart(x, t(45)));
  CHECK(*q.next_deadline() == t(40));
  CHECK(q.run_due(t(40)) == 1);
  CHECK(*q.next_deadline() == t(45));
  CHECK(q.run_due(t(45)) == 1);
  CHECK_FALSE(q.next_deadline().has_value());
}

TEST_CASE("timer queue: 10,000 timers, random cancels, the rest run in sorted order") {
  std::mt19937 rng(20240611);
  TimerQueue q;
  constexpr int kCount = 10'000;
  struct Fired {
    int64_t when;
    int index;
  };
  std::vector<Fired> fired;
  fired.reserve(kCount);
  std::vector<int64_t> deadline(kCount);
  std::vector<TimerId> ids(kCount);
  std::vector<bool> cancelled(kCount, false);
  for (int i = 0; i < kCount; ++i) {
    deadline[i] = int64_t(rng() % 2000);  // about five timers per deadline: many ties
    ids[i] = q.add(t(deadline[i]), kOnce, [&fired, &deadline, i] { fired.push_back({deadline[i], i}); });
  }
  CHECK(q.size() == size_t(kCount));

  int live = kCount;
  for (int i = 0; i < kCount; ++i) {
    if (rng() % 2) continue;
    REQUIRE(q.cancel(ids[i]));
    cancelled[i] = true;
    --live;
  }
  // Cancelling again is refused and changes nothing.
  for (int i = 0; i < kCount; ++i)
    if (cancelled[i]) REQUIRE_FALSE(q.cancel(ids[i]));
  CHECK(q.size() == size_t(live));

  int64_t min_live = 1 << 30;
  for (int i = 0; i < kCount; ++i)
    if (!cancelled[i]) min_live = std::min(min_live, deadline[i]);
  REQUIRE(q.next_deadline().has_value());
  CHECK(*q.next_deadline() == t(min_live));

  SUBCASE("all at once") {
    CHECK(q.run_due(t(2000)) == size_t(live));
  }
  SUBCASE("in steps of 7 ms") {
    size_t ran = 0;
    for (int64_t now = 0; now < 2000 + 7; now += 7) {
      ran += q.run_due(t(now));
      // Nothing that ran was due later than now.
      if (!fired.empty()) REQUIRE(fired.back().when <= now);
    }
    CHECK(ran == size_t(live));
  }

  CHECK(q.empty());
  REQUIRE(fired.size() == size_t(live));
  for (const auto& f : fired) REQUIRE_FALSE(cancelled[f.index]);
  // Sorted by deadline, ties in insertion order.
  bool sorted = std::is_sorted(fired.begin(), fired.end(), [](const Fired& a, const Fired& b) {
    return a.when < b.when || (a.when == b.when && a.index < b.index);
  });
  CHECK(sorted);
  // And each live timer ran exactly once.
  std::vector<int> count(kCount, 0);
  for (const auto& f : fired) ++count[f.index];
  for (int i = 0; i < kCount; ++i) REQUIRE(count[i] == (cancelled[i] ? 0 : 1));
}
