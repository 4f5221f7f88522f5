// Unit tests for the proxy's upstream choice (protocols/proxy/upstream_pool.cpp): round
// robin, passing over failed upstreams for retry_after, a client's retry on the next one.
#include <doctest/doctest.h>

#include "proxy/upstream_pool.hpp"

using netloop::TimePoint;
using netloop::proxy::UpstreamPool;
using std::chrono::seconds;

namespace {
const TimePoint t0 = TimePoint{} + std::chrono::hours(1);
uint64_t bit(size_t i) { return uint64_t{1} << i; }
}  // namespace

TEST_CASE("upstream pool: round robin over healthy upstreams") {
  UpstreamPool pool(3, seconds(5));
  CHECK(pool.pick(t0, 0) == 0u);
  CHECK(pool.pick(t0, 0) == 1u);
  CHECK(pool.pick(t0, 0) == 2u);
  CHECK(pool.pick(t0, 0) == 0u);
}

TEST_CASE("upstream pool: a client is tried on each upstream once, then given up") {
  UpstreamPool pool(3, seconds(5));
  uint64_t tried = 0;
  auto a = pool.pick(t0, tried);
  REQUIRE(a);
  tried |= bit(*a);
  auto b = pool.pick(t0, tried);
  REQUIRE(b);
  CHECK(*b != *a);
  tried |= bit(*b);
  auto c = pool.pick(t0, tried);
  REQUIRE(c);
  CHECK(*c != *a);
  CHECK(*c != *b);
  tried |= bit(*c);
  CHECK_FALSE(pool.pick(t0, tried).has_value());
}

TEST_CASE("upstream pool: a failed upstream is passed over for retry_after") {
  UpstreamPool pool(2, seconds(5));
  CHECK(pool.failed(0, t0));        // healthy until now: worth a log line
  CHECK_FALSE(pool.failed(0, t0));  // already passed over
  CHECK(pool.passed_over(0, t0));
  for (int i = 0; i < 4; ++i) CHECK(pool.pick(t0 + seconds(1), 0) == 1u);
  // The wait is over: back in turn.
  auto later = t0 + seconds(6);
  CHECK_FALSE(pool.passed_over(0, later));
  bool saw0 = false;
  for (int i = 0; i < 2; ++i) saw0 = saw0 || pool.pick(later, 0) == 0u;
  CHECK(saw0);
}

TEST_CASE("upstream pool: a success makes an upstream healthy at once") {
  UpstreamPool pool(2, seconds(5));
  pool.failed(0, t0);
  pool.connected(0);
  CHECK_FALSE(pool.passed_over(0, t0));
}

TEST_CASE("upstream pool: when every upstream left is passed over, the soonest back is tried") {
  UpstreamPool pool(3, seconds(5));
  pool.failed(0, t0);
  pool.failed(1, t0 + seconds(2));
  pool.failed(2, t0 + seconds(1));
  auto now = t0 + seconds(3);
  CHECK(pool.pick(now, 0) == 0u);
  CHECK(pool.pick(now, bit(0)) == 2u);
  CHECK(pool.pick(now, bit(0) | bit(2)) == 1u);
  CHECK_FALSE(pool.pick(now, bit(0) | bit(1) | bit(2)).has_value());
  // A healthy upstream still comes before them all.
  pool.connected(1);
  CHECK(pool.pick(now, 0) == 1u);
}

TEST_CASE("upstream pool: one upstream, and 64") {
  UpstreamPool one(1, seconds(5));
  CHECK(one.pick(t0, 0) == 0u);
  CHECK_FALSE(one.pick(t0, bit(0)).has_value());
  UpstreamPool many(64, seconds(5));
  uint64_t tried = 0;
  for (int i = 0; i < 64; ++i) {
    auto k = many.pick(t0, tried);
    REQUIRE(k);
    CHECK((tried & bit(*k)) == 0);
    tried |= bit(*k);
  }
  CHECK(tried == ~uint64_t{0});
  CHECK_FALSE(many.pick(t0, tried).has_value());
}
