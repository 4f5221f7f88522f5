// Micro-benchmarks of every poller backend: one wait() with N registered idle descriptors
// and K ready ones, and one add/modify/remove, e.g. BM_PollerWait/epoll/idle:10000/ready:64.
#include <benchmark/benchmark.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "netloop/fd.hpp"
#include "netloop/poller.hpp"

using namespace netloop;

namespace {

struct Pair {
  Fd a, b;
};

Pair make_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) return {};
  return {Fd(sv[0]), Fd(sv[1])};
}

// Idle descriptors: both ends of silent socketpairs, registered for read. Ready ones: one
// end of a pair with a byte waiting unread, so a level-triggered backend reports it on
// every wait. N idle + K ready cost N + 2K descriptors.
void BM_PollerWait(benchmark::State& state, std::string backend) {
  const size_t idle = size_t(state.range(0)), ready = size_t(state.range(1));
  auto p = create_poller(backend);
  if (!p) return state.SkipWithError(("cannot create " + backend).c_str());
  const size_t idle_pairs = (idle + 1) / 2;
  std::vector<Pair> pairs(idle_pairs + ready);
  std::vector<char> tokens(2 * pairs.size());
  size_t registered_idle = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    pairs[i] = make_pair();
    if (!pairs[i].a) return state.SkipWithError("socketpair failed (descriptor limit?)");
    if (auto ec = (*p)->add(pairs[i].a.get(), Interest::read, &tokens[2 * i]).error())
      return state.SkipWithError((backend + ": " + ec.message()).c_str());
    if (i < idle_pairs) {
      if (++registered_idle < idle) {
        if (auto ec = (*p)->add(pairs[i].b.get(), Interest::read, &tokens[2 * i + 1]).error())
          return state.SkipWithError((backend + ": " + ec.message()).c_str());
        ++registered_idle;
      }
    } else if (::write(pairs[i].b.get(), "x", 1) != 1) {
      return state.SkipWithError("write");
    }
  }
  std::vector<PollEvent> out(std::max<size_t>(ready, 1) + 8);
  for (auto _ : state) {
    auto n = (*p)->wait(out, 0);
    if (!n || *n != ready) return state.SkipWithError("wrong number of ready descriptors");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel("per wait()");
}

void BM_PollerAddModifyRemove(benchmark::State& state, std::string backend) {
  auto p = create_poller(backend);
  if (!p) return state.SkipWithError(("cannot create " + backend).c_str());
  Pair pair = make_pair();
  char token = 0;
  for (auto _ : state) {
    (*p)->add(pair.a.get(), Interest::read, &token);
    (*p)->modify(pair.a.get(), Interest::read_write, &token);
    (*p)->remove(pair.a.get());
  }
  state.SetLabel("per add+modify+remove");
}

bool register_all() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;  // 10,000 idle pairs need 20,000+ descriptors
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  for (const auto& b : available_backends()) {
    if (!b.available) continue;
    auto* w = benchmark::RegisterBenchmark(("BM_PollerWait/" + b.name).c_str(), BM_PollerWait, b.name);
    w->ArgNames({"idle", "ready"});
    for (int64_t n : {0, 100, 1000, 10000})
      for (int64_t k : {1, 64}) w->Args({n, k});
    benchmark::RegisterBenchmark(("BM_PollerAddModifyRemove/" + b.name).c_str(),
                                 BM_PollerAddModifyRemove, b.name);
  }
  return true;
}
const bool registered = register_all();

}  // namespace

BENCHMARK_MAIN();
