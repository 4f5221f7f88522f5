// Micro-benchmarks of TimerQueue: the cost of arming, re-arming and cancelling a timer
// with N timers already pending (the keep-alive pattern: one idle timer per connection).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "netloop/timer_queue.hpp"

using namespace netloop;

namespace {

void fill(TimerQueue& q, std::vector<TimerId>& ids, size_t n, TimePoint base) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> ms(1, 60'000);
  for (size_t i = 0; i < n; ++i) ids.push_back(q.add(base + milliseconds(ms(rng)), {}, [] {}));
}

void BM_TimerAddCancel(benchmark::State& state) {
  TimerQueue q;
  std::vector<TimerId> ids;
  TimePoint base{};
  fill(q, ids, size_t(state.range(0)), base);
  for (auto _ : state) {
    TimerId id = q.add(base + seconds(30), {}, [] {});
    benchmark::DoNotOptimize(q.cancel(id));
  }
  state.SetLabel("ns per add+cancel");
}
BENCHMARK(BM_TimerAddCancel)->ArgName("pending")->Arg(0)->Arg(1000)->Arg(100000);

void BM_TimerRestart(benchmark::State& state) {
  TimerQueue q;
  std::vector<TimerId> ids;
  TimePoint base{};
  fill(q, ids, size_t(state.range(0)), base);
  size_t i = 0;
  int64_t t = 0;
  for (auto _ : state) {
    // Push one connection's idle deadline further out, as a keep-alive request does.
    q.restart(ids[i], base + milliseconds(60'000 + ++t));
    if (++i == ids.size()) i = 0;
  }
  state.SetLabel("ns per restart");
}
BENCHMARK(BM_TimerRestart)->ArgName("pending")->Arg(1000)->Arg(100000);

void BM_TimerFire(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    TimerQueue q;
    std::vector<TimerId> ids;
    fill(q, ids, n, TimePoint{});
    state.ResumeTiming();
    benchmark::DoNotOptimize(q.run_due(TimePoint{} + seconds(61)));
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(n));
}
BENCHMARK(BM_TimerFire)->ArgName("timers")->Arg(10000);

}  // namespace

BENCHMARK_MAIN();
