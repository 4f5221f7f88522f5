// Unit tests for ClientKey (lib/src/client_key.cpp) and ClientConnectionLimit / ClientSlot
// (lib/src/client_limit.cpp): the /64 grouping, IPv4-mapped peers, the per-client counts,
// that entries exist only while a client has connections, and threads sharing one table.
#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "netloop/client_limit.hpp"

using netloop::Address;
using netloop::ClientConnectionLimit;
using netloop::ClientKey;
using netloop::ClientSlot;

namespace {

Address addr(const std::string& text) {
  auto a = Address::parse_numeric(text);
  REQUIRE_MESSAGE(a.ok(), text);
  return *a;
}

ClientKey key(const std::string& text, int prefix = 64) { return ClientKey::of(addr(text), prefix); }

}  // namespace

TEST_CASE("client key: IPv4 by address, the port ignored") {
  CHECK(key("10.0.0.1:1") == key("10.0.0.1:2"));
  CHECK(key("10.0.0.1:1") != key("10.0.0.2:1"));
  CHECK(key("127.0.0.1:80") != key("127.0.0.2:80"));
}

TEST_CASE("client key: IPv6 grouped by /64 by default") {
  CHECK(key("[2001:db8:1:2::1]:1") == key("[2001:db8:1:2:ffff:ffff:ffff:ffff]:9"));
  CHECK(key("[2001:db8:1:2::1]:1") != key("[2001:db8:1:3::1]:1"));
  CHECK(key("[::1]:1") == key("[::2]:1"));  // ::/64
}

TEST_CASE("client key: the IPv6 prefix is configurable, and clamped to 32..128") {
  CHECK(key("[2001:db8:1:2::1]:1", 48) == key("[2001:db8:1:3::1]:1", 48));
  CHECK(key("[2001:db8:1:2::1]:1", 48) != key("[2001:db8:2:2::1]:1", 48));
  CHECK(key("[2001:db8::1]:1", 128) != key("[2001:db8::2]:1", 128));
  // A prefix that is not a multiple of 8: /60 keeps the top nibble of the 8th byte.
  CHECK(key("[2001:db8:0:10::]:1", 60) == key("[2001:db8:0:1f::]:1", 60));
  CHECK(key("[2001:db8:0:10::]:1", 60) != key("[2001:db8:0:20::]:1", 60));
  CHECK(key("[2001:db8:1::1]:1", 0) == key("[2001:db8:2::1]:1", 32));  // clamped up to 32
  CHECK(key("[2001:db8::1]:1", 999) != key("[2001:db8::2]:1", 999));    // clamped down to 128
}

TEST_CASE("client key: an IPv4-mapped IPv6 peer is its IPv4 address, never grouped") {
  CHECK(key("[::ffff:10.0.0.1]:5") == key("10.0.0.1:7"));
  // Under the /64 grouping every mapped address would be one client: they must not be.
  CHECK(key("[::ffff:10.0.0.1]:5") != key("[::ffff:10.0.0.2]:5"));
  // IPv4 and an IPv6 network never collide.
  CHECK(key("10.0.0.1:1") != key("[::a00:1]:1"));
}

TEST_CASE("client key: a non-IP address is the all-zero key") {
  CHECK(ClientKey::of(Address()) == ClientKey{});
}

TEST_CASE("client limit: per-client counts, other clients unaffected") {
  ClientConnectionLimit limit(3);
  Address a = addr("127.0.0.1:1000"), b = addr("127.0.0.2:1000");
  CHECK(limit.try_acquire(a));
  CHECK(limit.try_acquire(addr("127.0.0.1:1001")));
  CHECK(limit.try_acquire(a));
  CHECK_FALSE(limit.try_acquire(a));  // the 4th
  CHECK(limit.try_acquire(b));
  CHECK(limit.open(limit.key_of(a)) == 3);
  CHECK(limit.open(limit.key_of(b)) == 1);
  limit.release(a);
  CHECK(limit.try_acquire(a));  // room again after one closed
  CHECK_FALSE(limit.try_acquire(a));
  for (int i = 0; i < 3; ++i) limit.release(a);
  limit.release(b);
  CHECK(limit.open_total() == 0);
  CHECK(limit.clients() == 0);
}

TEST_CASE("client limit: IPv6 peers of one /64 share a count") {
  ClientConnectionLimit limit(2);
  CHECK(limit.try_acquire(addr("[2001:db8::1]:1")));
  CHECK(limit.try_acquire(addr("[2001:db8::2]:1")));
  CHECK_FALSE(limit.try_acquire(addr("[2001:db8::3]:1")));
  CHECK(limit.try_acquire(addr("[2001:db8:0:1::3]:1")));  // the next /64
  ClientConnectionLimit exact(2, 128);
  CHECK(exact.ipv6_prefix() == 128);
  CHECK(exact.try_acquire(addr("[2001:db8::1]:1")));
  CHECK(exact.try_acquire(addr("[2001:db8::2]:1")));
  CHECK(exact.try_acquire(addr("[2001:db8::3]:1")));
}

TEST_CASE("client limit: an entry exists only while its client has connections") {
  ClientConnectionLimit limit(1);
  // Many clients come and go: the table never holds more than those connected now, and
  // the nodes it keeps for reuse stay bounded.
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 200; ++i)
      REQUIRE(limit.try_acquire(addr("10.1." + std::to_string(round) + "." + std::to_string(i) + ":1")));
    CHECK(limit.clients() == 200);
    for (int i = 0; i < 200; ++i)
      limit.release(addr("10.1." + std::to_string(round) + "." + std::to_string(i) + ":1"));
    CHECK(limit.clients() == 0);
    CHECK(limit.spare_nodes() <= ClientConnectionLimit::kShards * ClientConnectionLimit::kSparePerShard);
  }
  // Releasing what was never taken changes nothing (no negative counts, no entry).
  limit.release(addr("10.9.9.9:1"));
  CHECK(limit.clients() == 0);
  CHECK(limit.try_acquire(addr("10.9.9.9:1")));
  CHECK_FALSE(limit.try_acquire(addr("10.9.9.9:1")));
}

TEST_CASE("client slot: released exactly once, by release() or the destructor") {
  ClientConnectionLimit limit(2);
  Address a = addr("127.0.0.1:1");
  {
    ClientSlot s1 = ClientSlot::acquire(limit, a);
    CHECK(bool(s1));
    ClientSlot s2 = ClientSlot::acquire(limit, a);
    CHECK(bool(s2));
    ClientSlot s3 = ClientSlot::acquire(limit, a);
    CHECK_FALSE(bool(s3));  // at the limit: empty, and holds nothing
    CHECK(limit.open(limit.key_of(a)) == 2);
    s1.release();
    s1.release();  // a second release is a no-op
    CHECK(limit.open(limit.key_of(a)) == 1);
    ClientSlot moved = std::move(s2);
    CHECK_FALSE(bool(s2));
    CHECK(limit.open(limit.key_of(a)) == 1);
    ClientSlot other = ClientSlot::acquire(limit, a);
    other = std::move(moved);  // assigning releases what `other` held
    CHECK(limit.open(limit.key_of(a)) == 1);
  }
  CHECK(limit.open_total() == 0);
  CHECK(limit.clients() == 0);
}

TEST_CASE("client limit: threads sharing one table never exceed a client's limit") {
  ClientConnectionLimit limit(4);
  std::atomic<int> held_max{0};
  std::atomic<int> held{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        Address a = Address::ipv4_loopback(uint16_t(1000 + t));  // one client for all
        if (!limit.try_acquire(a)) continue;
        int now = ++held;
        int prev = held_max.load();
        while (now > prev && !held_max.compare_exchange_weak(prev, now)) {
        }
        --held;
        limit.release(a);
      }
    });
  for (auto& th : threads) th.join();
  CHECK(held_max.load() <= 4);
  CHECK(limit.open_total() == 0);
  CHECK(limit.clients() == 0);
}
