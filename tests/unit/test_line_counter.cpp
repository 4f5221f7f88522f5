// Unit tests for the tutorial's line-counter handler (docs/examples/line_counter), driven
// through netloop::testing::MemoryConnection: no sockets, no loop, a fake clock.
// docs/writing-a-handler.md quotes these tests.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>

#include "line_counter.hpp"
#include "netloop/testing/memory_connection.hpp"

using namespace netloop;
using line_counter::Options;
using line_counter::Service;
using netloop::testing::MemoryConnection;
using netloop::testing::MemoryOptions;

namespace {

// A connection to `service`, opened (on_open has run).
std::unique_ptr<MemoryConnection> connect(const std::shared_ptr<Service>& service,
                                          MemoryOptions mo = {}) {
  auto c = std::make_unique<MemoryConnection>(line_counter::line_counter_factory(service)(), mo);
  c->open();
  return c;
}

// "OK 1\nOK 2\n...OK n\n": the replies to n pipelined INCRs of one counter.
std::string ok_sequence(int n) {
  std::string s;
  for (int i = 1; i <= n; ++i) s += "OK " + std::to_string(i) + "\n";
  return s;
}

}  // namespace

TEST_CASE("INCR and GET: a counter starts at zero; LF or CR LF ends a line") {
  auto service = std::make_shared<Service>();
  auto c = connect(service);
  c->feed("GET hits\n");
  CHECK(c->take_output() == "OK 0\n");
  c->feed("INCR hits\r\n");
  CHECK(c->take_output() == "OK 1\n");
  c->feed("INCR hits\n");
  c->feed("GET hits\n");
  CHECK(c->take_output() == "OK 2\nOK 2\n");
  c->feed("\n\r\n");  // blank lines are ignored
  CHECK(c->output().empty());
  CHECK_FALSE(c->closed());
  CHECK(c->unconsumed_input() == 0);
  CHECK(service->stats.commands == 4);
}

TEST_CASE("a line split across feeds: nothing happens until its end arrives") {
  auto service = std::make_shared<Service>();
  auto c = connect(service);
  c->feed("IN");
  c->feed("CR pag");
  CHECK(c->output().empty());
  CHECK(c->unconsumed_input() == 8);  // left in the input for the next call
  c->feed("e\nGET pa");
  CHECK(c->take_output() == "OK 1\n");
  c->feed("ge\n");
  CHECK(c->take_output() == "OK 1\n");

  // Byte by byte, the same replies as all at once.
  auto bytewise = connect(service);
  bytewise->feed_in_pieces("INCR page\nGET page\n", 1);
  CHECK(bytewise->take_output() == "OK 2\nOK 2\n");
}

TEST_CASE("pipelined commands, several in one feed, are answered in order") {
  auto service = std::make_shared<Service>();
  auto c = connect(service);
  c->feed("INCR a\nINCR b\nINCR a\nGET b\nNOPE\nGET\nINCR a\n");
  CHECK(c->take_output() ==
        "OK 1\nOK 1\nOK 2\nOK 1\nERR unknown command\nERR usage: GET name\nOK 3\n");
  CHECK_FALSE(c->closed());  // mistakes are answered; the connection goes on
}

TEST_CASE("connections of one service share its counters") {
  auto service = std::make_shared<Service>();
  auto a = connect(service);
  auto b = connect(service);
  a->feed("INCR x\n");
  b->feed("INCR x\n");
  a->feed("GET x\n");
  CHECK(a->take_output() == "OK 1\nOK 2\n");
  CHECK(b->take_output() == "OK 2\n");
  CHECK(service->stats.open == 2);
}

TEST_CASE("QUIT: BYE, the rest of the input is ignored, an orderly close (local)") {
  auto service = std::make_shared<Service>();
  auto c = connect(service);
  c->feed("INCR a\nQUIT\nINCR a\n");
  CHECK(c->take_output() == "OK 1\nBYE\n");
  REQUIRE(c->closed());
  CHECK(c->close_info()->reason == CloseReason::local);
  CHECK(c->timers_pending() == 0);  // the idle timer went with the connection
  CHECK(service->counters.at("a") == 1);
}

TEST_CASE("a line longer than max_line: ERR, then close, without waiting for its end") {
  Options o;
  o.max_line = 16;
  auto service = std::make_shared<Service>(o);
  SUBCASE("exactly max_line bytes, LF included, is accepted") {
    auto c = connect(service);
    c->feed("INCR abcdefghij\n");  // 16 bytes
    CHECK(c->take_output() == "OK 1\n");
    c->feed("GET abcdefghij\r\n");  // 16 bytes with the CR
    CHECK(c->take_output() == "OK 1\n");
    CHECK_FALSE(c->closed());
  }
  SUBCASE("one byte more is refused, even before its end arrives") {
    auto c = connect(service);
    c->feed("INCR abcdefgh");
    c->feed("ijk");  // 16 bytes and no LF yet
    CHECK(c->take_output() == "ERR line too long\n");
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::local);
  }
  SUBCASE("commands before the long line are answered first") {
    auto c = connect(service);
    c->feed("INCR a\n" + std::string(100, 'x'));
    CHECK(c->take_output() == "OK 1\nERR line too long\n");
    CHECK(c->closed());
  }
}

TEST_CASE("limits on names and counters") {
  Options o;
  o.max_name = 4;
  o.max_counters = 2;
  auto service = std::make_shared<Service>(o);
  auto c = connect(service);
  c->feed("INCR abcde\nINCR a b\nINCR a\nINCR b\nINCR c\nINCR a\n");
  CHECK(c->take_output() ==
        "ERR usage: INCR name\nERR usage: INCR name\nOK 1\nOK 1\nERR too many counters\nOK 2\n");
  service->counters["a"] = INT64_MAX;
  c->feed("INCR a\n");
  CHECK(c->take_output() == "ERR overflow\n");
}

TEST_CASE("idle timeout: a connection that sends no command is told so and closed") {
  Options o;
  o.idle_timeout = seconds(60);
  auto service = std::make_shared<Service>(o);
  SUBCASE("silent from the start") {
    auto c = connect(service);
    c->advance(seconds(59));
    CHECK_FALSE(c->closed());
    c->advance(seconds(2));
    CHECK(c->take_output() == "ERR idle timeout\n");
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::local);
    CHECK(service->stats.idle_timeouts == 1);
  }
  SUBCASE("commands keep it open, with one timer and no timer work per command") {
    auto c = connect(service);
    for (int i = 0; i < 10; ++i) {
      c->advance(seconds(40));
      c->feed("INCR a\nINCR a\nINCR a\n");
      CHECK(c->timers_pending() == 1);
    }
    CHECK_FALSE(c->closed());
    CHECK(c->take_output() == ok_sequence(30));
    c->advance(seconds(59));  // 59 s after the last command
    CHECK_FALSE(c->closed());
    c->advance(seconds(1));
    CHECK(c->closed());
  }
  SUBCASE("blank lines and half a command are not activity") {
    auto c = connect(service);
    c->advance(seconds(30));
    c->feed("\n\nINCR");
    c->advance(seconds(31));
    CHECK(c->closed());
  }
}

TEST_CASE("a peer that pipelines without reading: output stays bounded, every command answered in order") {
  auto service = std::make_shared<Service>();
  MemoryOptions mo;
  mo.high_water = 8 * 1024;
  mo.low_water = 2 * 1024;
  auto c = connect(service, mo);
  c->set_peer_reading(false);
  std::string commands;
  for (int i = 0; i < 20000; ++i) commands += "INCR a\n";
  c->feed(commands);
  // The handler stopped at the high-water mark; the rest of the commands wait in the input.
  CHECK(c->pending() < mo.high_water + 4096 + 64);
  CHECK(c->unconsumed_input() > 0);
  const std::string expected = ok_sequence(20000);
  std::string replies;
  for (int round = 0; round < 10000 && replies.size() < expected.size(); ++round) {
    c->peer_reads(1000);  // the peer reads a little at a time
    replies += c->take_output();
    CHECK(c->pending() < mo.high_water + 4096 + 64);
  }
  CHECK(replies == expected);
  CHECK(c->unconsumed_input() == 0);
  CHECK_FALSE(c->closed());
}

TEST_CASE("the peer's end of stream: what it sent is answered, then an orderly close (peer)") {
  auto service = std::make_shared<Service>();
  SUBCASE("at once") {
    auto c = connect(service);
    c->feed("INCR a\nINCR a\nINC");  // a partial last line is dropped
    c->peer_shutdown();
    CHECK(c->take_output() == "OK 1\nOK 2\n");
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::peer);
  }
  SUBCASE("with commands still waiting behind a full output") {
    MemoryOptions mo;
    mo.high_water = 8 * 1024;
    mo.low_water = 2 * 1024;
    auto c = connect(service, mo);
    c->set_peer_reading(false);
    std::string commands;
    for (int i = 0; i < 5000; ++i) commands += "INCR b\n";
    c->feed(commands);
    REQUIRE(c->unconsumed_input() > 0);
    c->peer_shutdown();
    // Not read yet: with the output full the connection is not reading, so the end of
    // stream waits behind the commands, as it would on a socket.
    CHECK_FALSE(c->closed());
    c->set_peer_reading(true);
    CHECK(c->take_output() == ok_sequence(5000));
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::peer);
  }
}

TEST_CASE("close reasons, and what causes each") {
  auto service = std::make_shared<Service>();
  SUBCASE("aborted: a line with control characters is not a client of ours") {
    auto c = connect(service);
    c->feed("INCR a\n" + std::string("\x16\x03\x01\0\n", 5));  // a TLS handshake, say
    CHECK(c->output().empty());  // abort drops even the reply to INCR a, still unsent
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::aborted);
  }
  SUBCASE("reset: the peer reset the connection") {
    auto c = connect(service);
    c->peer_reset();
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::reset);
    CHECK(c->close_info()->error == std::error_code(ECONNRESET, std::system_category()));
  }
  SUBCASE("error: the connection's own input limit (max_input) came first") {
    MemoryOptions mo;
    mo.max_input = 100;  // below the handler's max_line of 1024
    auto c = connect(service, mo);
    c->feed(std::string(200, 'x'));
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::error);
    CHECK(c->close_info()->error == std::error_code(EMSGSIZE, std::system_category()));
  }
  SUBCASE("shutdown: the listener (here, the MemoryConnection) goes away") {
    connect(service)->feed("INCR a\n");
    CHECK(service->stats.closed(CloseReason::shutdown) == 1);
  }
  SUBCASE("local and peer: QUIT, and the peer's end of stream") {
    connect(service)->feed("QUIT\n");
    connect(service)->peer_shutdown();
    CHECK(service->stats.closed(CloseReason::local) == 1);
    CHECK(service->stats.closed(CloseReason::peer) == 1);
  }
  CHECK(service->stats.open == 0);
}
