// Unit tests for the TCP echo handler (protocols/echo/tcp_echo.cpp), driven through
// netloop::testing::MemoryConnection: no sockets, no loop.
#include <doctest/doctest.h>

#include <memory>
#include <random>
#include <string>
#include <string_view>

#include "echo/tcp_echo.hpp"
#include "netloop/testing/memory_connection.hpp"

using namespace netloop;
using netloop::testing::MemoryConnection;
using netloop::testing::MemoryOptions;

namespace {

std::string binary_pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = char(rng() & 0xff);
  return s;
}

MemoryConnection echo_connection(MemoryOptions o = {}) {
  return MemoryConnection(echo::tcp_echo_factory()(), o);
}

}  // namespace

TEST_CASE("echo handler: data is echoed exactly and the input fully consumed") {
  MemoryConnection c(std::make_unique<echo::TcpEchoHandler>());
  c.open();
  CHECK(c.output().empty());
  c.feed("hello, echo\r\n");
  CHECK(c.take_output() == "hello, echo\r\n");
  CHECK(c.unconsumed_input() == 0);

  const std::string bin("\0\x01\xff\xfe\r\n\0", 7);  // NUL and 0xff included
  c.feed(bin);
  CHECK(c.take_output() == bin);

  // The handler never closes, shuts down or pauses on its own.
  CHECK_FALSE(c.closed());
  CHECK_FALSE(c.write_shut_down());
  CHECK_FALSE(c.reading_paused());
  CHECK(c.timers_pending() == 0);
}

TEST_CASE("echo handler: arbitrary splits of the input echo the same bytes") {
  const std::string stream = binary_pattern(200'000, 7);
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    MemoryConnection c(std::make_unique<echo::TcpEchoHandler>());
    size_t pos = 0;
    int pieces = 0;
    while (pos < stream.size()) {
      // Piece sizes from 1 byte up to 64 KiB, mostly small.
      size_t n = (rng() % 32 == 0) ? 1 + rng() % 65536 : 1 + rng() % 100;
      n = std::min(n, stream.size() - pos);
      c.feed(std::string_view(stream).substr(pos, n));
      pos += n;
      ++pieces;
      REQUIRE(c.unconsumed_input() == 0);
      REQUIRE(c.output().size() == pos);
    }
    CHECK(pieces > 50);
    CHECK(c.output() == stream);
  }
}

TEST_CASE("echo handler: a large single input (1 MiB) is echoed whole") {
  const std::string big = binary_pattern(size_t(1) << 20, 11);
  MemoryConnection c(std::make_unique<echo::TcpEchoHandler>());
  c.feed(big);
  CHECK(c.unconsumed_input() == 0);
  CHECK(c.output() == big);
}

TEST_CASE("echo handler: the peer's end of stream closes the connection in order") {
  MemoryConnection c(std::make_unique<echo::TcpEchoHandler>());
  c.feed("last words");
  c.peer_shutdown();
  REQUIRE(c.closed());
  CHECK(c.close_info()->reason == CloseReason::peer);
  CHECK(c.output() == "last words");  // orderly: what was echoed still went out
}

TEST_CASE("echo handler: a peer that stops reading stops being read, and catches up") {
  MemoryOptions o;
  o.high_water = 1000;
  o.low_water = 100;
  MemoryConnection c(std::make_unique<echo::TcpEchoHandler>(), o);
  c.set_peer_reading(false);
  const std::string chunk = binary_pattern(600, 3);
  c.feed(chunk);
  CHECK_FALSE(c.output_full());
  c.feed(chunk);  // 1200 pending: past the high-water mark
  CHECK(c.output_full());
  c.feed(chunk);  // not read from the peer while the output is full
  CHECK(c.pending() == 1200);
  CHECK(c.unread() == 600);  // still "in the kernel": the connection is not reading
  CHECK(c.unconsumed_input() == 0);
  c.peer_reads(1150);  // below the low-water mark: reading resumes, the input is echoed
  CHECK(c.unread() == 0);
  CHECK(c.unconsumed_input() == 0);
  c.set_peer_reading(true);
  CHECK(c.output() == chunk + chunk + chunk);
  CHECK_FALSE(c.closed());
}

TEST_CASE("echo handler: a reset peer closes it with reason reset") {
  MemoryConnection c(std::make_unique<echo::TcpEchoHandler>());
  c.feed("x");
  c.peer_reset();
  REQUIRE(c.closed());
  CHECK(c.close_info()->reason == CloseReason::reset);
}

TEST_CASE("echo handler: the factory makes a fresh handler per connection") {
  auto factory = echo::tcp_echo_factory();
  REQUIRE(factory);
  auto a = factory();
  auto b = factory();
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(a.get() != b.get());
  CHECK(dynamic_cast<echo::TcpEchoHandler*>(a.get()) != nullptr);
  MemoryConnection ca = echo_connection(), cb = echo_connection();
  ca.feed("to a");
  cb.feed("to b");
  CHECK(ca.output() == "to a");
  CHECK(cb.output() == "to b");
}

TEST_CASE("Connection timers: cancel_timer and restart_timer say whether the timer was pending; restart re-arms a fired one") {
  struct Timed final : netloop::StreamHandler {
    void on_data(netloop::Connection&, netloop::Buffer& in) override { in.consume(in.size()); }
  };
  MemoryConnection c(std::make_unique<Timed>());
  c.open();
  int fired = 0;
  netloop::TimerId a = c.start_timer(netloop::seconds(1), netloop::Duration::zero(), [&fired](Connection&) { ++fired; });
  netloop::TimerId b = c.start_timer(netloop::seconds(1), netloop::Duration::zero(),
                                     [&fired, &c](Connection& conn) {
                                       CHECK(&conn == &c);  // the callback is given its connection
                                       ++fired;
                                     });
  CHECK(c.cancel_timer(a));
  CHECK_FALSE(c.cancel_timer(a));  // already cancelled
  c.advance(netloop::seconds(2));
  CHECK(fired == 1);
  CHECK_FALSE(c.restart_timer(b, netloop::seconds(1)));  // it had fired: not pending...
  c.advance(netloop::seconds(1));
  CHECK(fired == 2);  // ...but re-armed, with the same callback
  CHECK_FALSE(c.restart_timer(b, netloop::seconds(1)));
  c.advance(netloop::milliseconds(500));
  CHECK(c.restart_timer(b, netloop::seconds(5)));  // pending: moved
  c.advance(netloop::seconds(4));
  CHECK(fired == 2);
  CHECK(c.cancel_timer(b));
  c.advance(netloop::seconds(10));
  CHECK(fired == 2);
  CHECK_FALSE(c.cancel_timer(b));  // cancelled: forgotten
  CHECK_FALSE(c.restart_timer(b, netloop::seconds(1)));
  CHECK(c.timers_pending() == 0);
}
