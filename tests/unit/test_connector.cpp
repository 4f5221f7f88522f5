// The connector's parts that need no network: the reconnect waits (Backoff), the
// resolver's promises (numeric names without a thread, never an answer inside the call,
// cancel, timeout on the loop's clock), keep_connected's schedule on a fake clock, and a
// client handler's failure path through testing::fail_connect.
#include <doctest/doctest.h>

#include <cmath>
#include <future>

#include "netloop/connector.hpp"
#include "netloop/testing/memory_connection.hpp"
#include "netloop/testing/memory_loop.hpp"

using namespace netloop;
using netloop::testing::MemoryLoop;

TEST_CASE("Backoff: doubles from initial up to max, and reset starts over") {
  ReconnectOptions o;
  o.initial = milliseconds(100);
  o.max = milliseconds(1000);
  o.jitter = 0;
  Backoff b(o, 1);
  CHECK(b.next() == milliseconds(100));
  CHECK(b.next() == milliseconds(200));
  CHECK(b.next() == milliseconds(400));
  CHECK(b.next() == milliseconds(800));
  CHECK(b.next() == milliseconds(1000));
  CHECK(b.next() == milliseconds(1000));
  CHECK(b.failures() == 6);
  for (int i = 0; i < 200; ++i) CHECK(b.next() == milliseconds(1000));  // no overflow
  b.reset();
  CHECK(b.next() == milliseconds(100));
}

TEST_CASE("Backoff: jitter shortens each wait by up to its fraction, differently per seed") {
  ReconnectOptions o;
  o.initial = milliseconds(1000);
  o.max = milliseconds(1000);
  o.jitter = 0.5;
  Backoff a(o, 1), b(o, 2);
  bool differ = false;
  for (int i = 0; i < 100; ++i) {
    Duration x = a.next(), y = b.next();
    CHECK(x >= milliseconds(500));
    CHECK(x <= milliseconds(1000));
    differ |= x != y;
  }
  CHECK(differ);
  Backoff c(o, 1), d(o, 1);  // the same seed, the same waits
  for (int i = 0; i < 10; ++i) CHECK(c.next() == d.next());
}

TEST_CASE("Resolver: a numeric host is answered on the loop, never inside the call") {
  MemoryLoop ml;
  ResolverOptions ro;
  bool looked_up = false;
  ro.lookup = [&](const std::string&, uint16_t) -> Result<Addresses> {
    looked_up = true;
    return make_error(ResolveErrc::failed);
  };
  Resolver r(ml.loop(), ro);
  std::optional<Result<Addresses>> got;
  r.resolve("::1", 443, [&](Result<Addresses> a) { got = std::move(a); });
  CHECK_FALSE(got);
  ml.settle();
  REQUIRE(got);
  REQUIRE(got->ok());
  CHECK((**got).size() == 1);
  CHECK((**got)[0].to_string() == "[::1]:443");
  CHECK_FALSE(looked_up);

  got.reset();
  r.resolve("[2001:db8::1]", 80, [&](Result<Addresses> a) { got = std::move(a); });
  r.resolve("10.1.2.3", 80, [](Result<Addresses>) {});
  ml.settle();
  REQUIRE(got);
  CHECK((**got)[0].to_string() == "[2001:db8::1]:80");
  CHECK_FALSE(looked_up);
  CHECK(r.pending() == 0);
}

TEST_CASE("Resolver: bad names fail without a lookup") {
  MemoryLoop ml;
  Resolver r(ml.loop());
  for (std::string bad : {std::string(), std::string(300, 'a'), std::string("a\0b", 3)}) {
    std::optional<Result<Addresses>> got;
    r.resolve(bad, 80, [&](Result<Addresses> a) { got = std::move(a); });
    ml.settle();
    REQUIRE(got);
    CHECK(got->error() == ResolveErrc::bad_name);
  }
  CHECK(make_error(ResolveErrc::name_not_found).message() == "name not found");
  CHECK(std::string(resolve_category().name()) == "resolve");
}

TEST_CASE("Resolver: a name goes to the lookup on a thread; cancel and timeout drop it") {
  MemoryLoop ml;
  std::promise<void> open_gate;
  std::shared_future<void> gate = open_gate.get_future().share();
  std::atomic<int> lookups{0};
  ResolverOptions ro;
  ro.timeout = seconds(5);
  ro.lookup = [&, gate](const std::string& host, uint16_t port) -> Result<Addresses> {
    ++lookups;
    if (host == "slow.test") gate.wait();
    if (host == "missing.test") return make_error(ResolveErrc::name_not_found);
    return Addresses{Address::ipv4_loopback(port), Address::ipv6_loopback(port)};
  };
  Resolver r(ml.loop(), ro);

  // An answer comes back through post(): settle until it has.
  auto settle_until = [&](auto pred) {
    for (int i = 0; i < 500 && !pred(); ++i) {
      ml.settle();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return pred();
  };

  std::optional<Result<Addresses>> fast, missing, slow, cancelled;
  r.resolve("fast.test", 8080, [&](Result<Addresses> a) { fast = std::move(a); });
  r.resolve("missing.test", 1, [&](Result<Addresses> a) { missing = std::move(a); });
  REQUIRE(settle_until([&] { return fast && missing; }));
  REQUIRE(fast->ok());
  CHECK((**fast).size() == 2);
  CHECK((**fast)[0].port() == 8080);
  CHECK(missing->error() == ResolveErrc::name_not_found);

  r.resolve("slow.test", 1, [&](Result<Addresses> a) { slow = std::move(a); });
  ResolveId c = r.resolve("slow.test", 2, [&](Result<Addresses> a) { cancelled = std::move(a); });
  CHECK(r.cancel(c));
  CHECK_FALSE(r.cancel(c));
  ml.advance(seconds(5));  // the loop's clock: the timeout fires
  REQUIRE(slow);
  CHECK(slow->error() == ResolveErrc::timed_out);
  open_gate.set_value();  // the late answer is dropped
  settle_until([] { return false; });
  CHECK_FALSE(cancelled);
  CHECK(slow->error() == ResolveErrc::timed_out);
  CHECK(r.pending() == 0);
}

namespace {

struct Attempts {
  std::vector<TimePoint> failed_at;
  int opens = 0;
};

class Recorder final : public StreamHandler {
 public:
  explicit Recorder(Attempts& a) : a_(a) {}
  void on_open(Connection&) override { ++a_.opens; }
  void on_data(Connection&, Buffer& in) override { in.consume(in.size()); }
  void on_close(Connection& c, const CloseInfo& info) override {
    if (info.reason == CloseReason::connect_failed) a_.failed_at.push_back(c.now());
  }

 private:
  Attempts& a_;
};

}  // namespace

TEST_CASE("Connector::keep_connected: the waits between attempts follow the backoff, on a fake "
          "clock, and cancel stops them") {
  MemoryLoop ml;
  ConnectorOptions co;
  co.seed = 7;
  co.resolver.lookup = [](const std::string&, uint16_t) -> Result<Addresses> {
    return make_error(ResolveErrc::name_not_found);
  };
  Connector connector(ml.loop(), co);
  Attempts a;
  ReconnectOptions r;
  r.initial = milliseconds(100);
  r.max = milliseconds(800);
  r.jitter = 0;
  // An empty name fails at once on the loop (no thread): each attempt fails when it starts.
  TimePoint t0 = ml.now();
  ConnectId id = connector.keep_connected("", 80, [&] { return std::make_unique<Recorder>(a); }, r);
  ml.settle();
  ml.advance(milliseconds(0));
  ml.advance(seconds(4));
  // Attempts at 0, then 100, 200, 400, 800, 800... later: 0, 100, 300, 700, 1500, 2300, 3100, 3900.
  std::vector<int64_t> want = {0, 100, 300, 700, 1500, 2300, 3100, 3900};
  REQUIRE(a.failed_at.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(std::chrono::duration_cast<milliseconds>(a.failed_at[i] - t0).count() == want[i]);
  }
  CHECK(connector.stats().reconnects.get() == want.size());
  CHECK(connector.cancel(id));
  ml.advance(seconds(10));
  CHECK(a.failed_at.size() == want.size());
  CHECK(a.opens == 0);
}

TEST_CASE("testing::fail_connect: a client handler's failure path without a network") {
  MemoryLoop ml;
  Attempts a;
  Recorder client(a);
  CloseInfo info = testing::fail_connect(ml, client, std::make_error_code(std::errc::connection_refused),
                                         Address::ipv4_loopback(6380));
  CHECK(info.reason == CloseReason::connect_failed);
  CHECK(info.text == "connect to 127.0.0.1:6380: " + info.error.message());
  CHECK(a.failed_at.size() == 1);
  CHECK(a.opens == 0);
}

TEST_CASE("Connector::keep_connected: a factory that cancels its own keeper stops it") {
  MemoryLoop ml;
  Connector connector(ml.loop());
  ConnectId id = 0;
  int calls = 0;
  id = connector.keep_connected("", 80, [&]() -> std::unique_ptr<StreamHandler> {
    ++calls;
    connector.cancel(id);  // "stop after this one"
    return nullptr;
  });
  ml.settle();
  ml.advance(seconds(5));
  CHECK(calls == 1);
  CHECK(connector.pending_count() == 0);
}

TEST_CASE("Backoff: no cap (Duration::max()) and odd jitter values stay sane") {
  ReconnectOptions o;
  o.initial = milliseconds(100);
  o.max = Duration::max();
  o.jitter = 0;
  Backoff b(o, 1);
  Duration last{};
  for (int i = 0; i < 100; ++i) {
    Duration d = b.next();
    CAPTURE(i);
    CHECK(d >= last);
    last = d;
  }
  for (double j : {std::nan(""), -1.0, 7.0}) {
    o.jitter = j;
    o.max = seconds(1);
    Backoff c(o, 3);
    for (int i = 0; i < 20; ++i) {
      Duration d = c.next();
      CHECK(d >= Duration::zero());
      CHECK(d <= seconds(1));
    }
  }
}

TEST_CASE("Resolver: a lookup that timed out compares equal to std::errc::timed_out") {
  CHECK(make_error(ResolveErrc::timed_out) == std::errc::timed_out);
  CHECK_FALSE(make_error(ResolveErrc::name_not_found) == std::errc::timed_out);
}
