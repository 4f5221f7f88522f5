// Unit tests for the request-rate limit (lib/src/rate_limit.cpp): the token bucket with
// time injected, the fixed-capacity table's recency eviction, a flood of 10x capacity
// distinct clients leaving its memory unchanged, and the sharded limiter.
#include <doctest/doctest.h>

#include <string>

#include "netloop/rate_limit.hpp"

using namespace netloop;
using std::chrono::milliseconds;

namespace {

ClientKey v4(uint32_t n) {
  ClientKey k;
  k.bytes[10] = k.bytes[11] = 0xff;
  k.bytes[12] = uint8_t(n >> 24);
  k.bytes[13] = uint8_t(n >> 16);
  k.bytes[14] = uint8_t(n >> 8);
  k.bytes[15] = uint8_t(n);
  return k;
}

const TimePoint t0 = TimePoint() + std::chrono::hours(1);

}  // namespace

TEST_CASE("token bucket: a full burst, then one token per 1/rate seconds") {
  RateLimitConfig c{5, 5};
  TokenBucket b(c, t0);
  for (int i = 0; i < 5; ++i) CHECK(b.take(c, t0).allowed);
  RateDecision d = b.take(c, t0);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == milliseconds(200));
  CHECK(d.retry_after_seconds() == 1);  // rounded up
  CHECK_FALSE(b.take(c, t0 + milliseconds(199)).allowed);
  CHECK(b.take(c, t0 + milliseconds(200)).allowed);  // waiting as told is enough
  CHECK_FALSE(b.take(c, t0 + milliseconds(200)).allowed);
  // A long quiet spell refills to the burst, not beyond.
  TimePoint later = t0 + std::chrono::hours(1);
  for (int i = 0; i < 5; ++i) CHECK(b.take(c, later).allowed);
  CHECK_FALSE(b.take(c, later).allowed);
}

TEST_CASE("token bucket: slow rates give Retry-After in whole seconds, rounded up") {
  RateLimitConfig c{0.4, 1};  // one token per 2.5 s
  TokenBucket b(c, t0);
  CHECK(b.take(c, t0).allowed);
  RateDecision d = b.take(c, t0);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after_seconds() == 3);
  d = b.take(c, t0 + std::chrono::seconds(2));
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after_seconds() == 1);  // 0.5 s left
  // A time earlier than the last one seen (another loop's clock) is not a refill.
  CHECK_FALSE(b.take(c, t0).allowed);
}

TEST_CASE("rate table: each client its own bucket") {
  RateLimitTable t(8, {1, 2});
  CHECK(t.take(v4(1), t0).allowed);
  CHECK(t.take(v4(1), t0).allowed);
  CHECK_FALSE(t.take(v4(1), t0).allowed);
  CHECK(t.take(v4(2), t0).allowed);  // another client is unaffected
  CHECK(t.size() == 2);
}

TEST_CASE("rate table: when full the least recently seen client is forgotten") {
  RateLimitTable t(3, {1, 1});
  CHECK(t.take(v4(1), t0).allowed);
  CHECK(t.take(v4(2), t0).allowed);
  CHECK(t.take(v4(3), t0).allowed);
  CHECK_FALSE(t.take(v4(1), t0).allowed);  // 1 is now the most recent
  CHECK(t.take(v4(4), t0).allowed);        // evicts 2, the least recent
  CHECK(t.evictions() == 1);
  CHECK_FALSE(t.contains(v4(2)));
  CHECK(t.contains(v4(1)));
  CHECK(t.contains(v4(3)));
  CHECK(t.contains(v4(4)));
  CHECK_FALSE(t.take(v4(1), t0).allowed);  // 1 kept its empty bucket
  CHECK(t.take(v4(2), t0).allowed);        // 2 was forgotten: a fresh full bucket (evicts 3)
  CHECK_FALSE(t.contains(v4(3)));
  CHECK(t.size() == 3);
}

TEST_CASE("rate table: a flood of 10x capacity distinct clients keeps memory fixed") {
  const size_t capacity = 1000;
  RateLimitTable t(capacity, {1, 1});
  size_t bytes = t.memory_bytes();
  CHECK(bytes > 0);
  // One steady client, seen between the flood's addresses, keeps its (empty) bucket.
  CHECK(t.take(v4(0xffffffff), t0).allowed);
  for (uint32_t i = 0; i < 10 * capacity; ++i) {
    CHECK(t.take(v4(i), t0).allowed);  // each a new client: a full bucket
    if (i % 100 == 0) CHECK_FALSE(t.take(v4(0xffffffff), t0).allowed);
  }
  CHECK(t.size() == capacity);
  CHECK(t.memory_bytes() == bytes);
  CHECK(t.evictions() == 10 * capacity + 1 - capacity);
  // The most recent ones are all there, the early ones are gone, lookups still work after
  // all that deleting (no lost entries in the probe chains).
  size_t found = 0;
  for (uint32_t i = 9 * uint32_t(capacity); i < 10 * capacity; ++i) found += t.contains(v4(i));
  CHECK(found >= capacity - 11);  // the steady client holds one place, evictions of it none
  CHECK_FALSE(t.contains(v4(0)));
  CHECK(t.contains(v4(0xffffffff)));
}

TEST_CASE("rate table: churn with keys that collide keeps every live key findable") {
  // A tiny table: its index has 8 slots, so probe chains wrap and deletions shift them.
  RateLimitTable t(4, {1, 1});
  for (uint32_t i = 0; i < 5000; ++i) {
    t.take(v4(i % 13), t0);
    // The last four distinct keys seen are always present.
    for (uint32_t back = 0; back < 4 && back <= i; ++back) REQUIRE(t.contains(v4((i - back) % 13)));
  }
  CHECK(t.size() == 4);
}

TEST_CASE("rate limiter: sharded, bounded, one bucket per client across callers") {
  RateLimiter l({10, 3}, 160);
  CHECK(l.capacity() == 160);
  size_t bytes = l.memory_bytes();
  for (int i = 0; i < 3; ++i) CHECK(l.take(v4(7), t0).allowed);
  RateDecision d = l.take(v4(7), t0);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after == milliseconds(100));
  CHECK(l.take(v4(8), t0).allowed);
  for (uint32_t i = 0; i < 10000; ++i) l.take(v4(1000 + i), t0);
  CHECK(l.size() <= l.capacity());
  CHECK(l.memory_bytes() == bytes);
  // The /64 grouping applies: two addresses of one /64 share a bucket.
  RateLimiter v6({1, 1}, 16);
  auto a = Address::parse_numeric("[2001:db8::1]:1"), b = Address::parse_numeric("[2001:db8::2]:1");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(v6.take(v6.key_of(*a), t0).allowed);
  CHECK_FALSE(v6.take(v6.key_of(*b), t0).allowed);
}
