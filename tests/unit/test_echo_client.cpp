// Unit tests for the echo-client example (docs/examples/echo_client), on the in-memory
// transport: each of the client's connections is a MemoryConnection whose peer plays the
// server, and testing::fail_connect plays a connect that failed. No sockets, a fake clock.
// docs/writing-a-handler.md quotes these tests.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "echo_client.hpp"
#include "netloop/testing/memory_connection.hpp"

using namespace netloop;
using echo_client::Session;
using netloop::testing::MemoryConnection;
using netloop::testing::MemoryLoop;

namespace {

// A client's session, and what its hooks heard.
struct Client {
  std::shared_ptr<Session> session;
  int finished = 0;
  std::vector<CloseInfo> disconnects;

  explicit Client(std::vector<std::string> messages, Duration interval = {})
      : session(std::make_shared<Session>(std::move(messages), interval)) {
    session->on_finished = [this] { ++finished; };
    session->on_disconnected = [this](const CloseInfo& info) { disconnects.push_back(info); };
  }
  Client(const Client&) = delete;  // the hooks point at this object

  // The connection keep_connected would make next, opened (on_open has run).
  std::unique_ptr<MemoryConnection> connect(MemoryLoop& loop) {
    auto c = std::make_unique<MemoryConnection>(loop, echo_client::echo_client_factory(session)());
    c->open();
    return c;
  }
};

}  // namespace

TEST_CASE("one message at a time, each echo checked and timed on the loop's clock") {
  MemoryLoop loop;
  Client client({"one\n", "two\n", "three\n"});
  auto c = client.connect(loop);
  CHECK(c->take_output() == "one\n");  // the next waits for this one's echo
  loop.advance(milliseconds(3));
  c->feed("one\n");
  CHECK(c->take_output() == "two\n");
  loop.advance(milliseconds(1));
  c->feed_in_pieces("two\n", 1);  // an echo in pieces is one echo
  CHECK(c->take_output() == "three\n");
  c->feed("thr");
  CHECK(c->output().empty());
  CHECK(c->unconsumed_input() == 0);  // checked and consumed; only the offset is kept
  loop.advance(milliseconds(2));
  c->feed("ee\n");

  REQUIRE(c->closed());  // all echoed: the client closes
  CHECK(c->close_info()->reason == CloseReason::local);
  CHECK(client.finished == 1);
  CHECK(client.disconnects.empty());
  const Session& s = *client.session;
  CHECK(s.echoed == 3);
  CHECK(s.error.empty());
  CHECK(s.stats.connects == 1);
  CHECK(s.stats.rtt_min == milliseconds(1));  // of 3, 1 and 2 ms
  CHECK(s.stats.rtt_max == milliseconds(3));
  CHECK(s.stats.rtt_total == milliseconds(6));
}

TEST_CASE("an echo that differs is caught at its first wrong byte and ends the session") {
  MemoryLoop loop;
  SUBCASE("a wrong byte") {
    Client client({"hello\n", "never sent\n"});
    auto c = client.connect(loop);
    CHECK(c->take_output() == "hello\n");
    c->feed("hel");
    CHECK_FALSE(c->closed());
    c->feed("p!\n");  // before the line is complete
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::protocol);
    CHECK(c->close_info()->error == std::errc::bad_message);
    CHECK(client.session->error == "the echo of message 1 differs from what was sent at byte 3");
    CHECK(client.session->echoed == 0);
    CHECK(c->output().empty());  // nothing more is sent
    CHECK(client.finished == 1);
    CHECK(client.disconnects.empty());  // over: not a disconnect to recover from
  }
  SUBCASE("bytes that echo nothing we sent") {
    Client client({"a\n", "b\n"}, seconds(1));
    auto c = client.connect(loop);
    c->feed("a\nX");  // "X" arrives while nothing is waiting for an echo
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::protocol);
    CHECK(client.session->error == "the server sent bytes that echo nothing we sent");
    CHECK(client.session->echoed == 1);
    CHECK(client.finished == 1);
  }
}

TEST_CASE("a failed connect is counted and reported; the next connection starts over") {
  MemoryLoop loop;
  Client client({"one\n"});
  auto handler = echo_client::echo_client_factory(client.session)();
  CloseInfo info = testing::fail_connect(loop, *handler,
                                         std::make_error_code(std::errc::connection_refused),
                                         Address::ipv4_loopback(7007));
  CHECK(client.session->stats.failed_connects == 1);
  REQUIRE(client.disconnects.size() == 1);
  CHECK(client.disconnects[0].reason == CloseReason::connect_failed);
  CHECK(client.disconnects[0].text == "connect to 127.0.0.1:7007: " + info.error.message());
  CHECK(client.finished == 0);
  CHECK(client.session->sent == 0);

  auto c = client.connect(loop);  // keep_connected's next attempt, with a new handler
  CHECK(c->take_output() == "one\n");
  CHECK(client.session->stats.resent == 0);
  c->feed("one\n");
  CHECK(client.finished == 1);
}

TEST_CASE("after a lost connection the next one resends the message whose echo did not come "
          "back, and only that one") {
  MemoryLoop loop;
  Client client({"one\n", "two\n", "three\n"});
  auto first = client.connect(loop);
  first->feed("one\n");
  CHECK(first->take_output() == "one\ntwo\n");
  first->feed("tw");  // half of the echo, then the server goes away
  CloseReason how{};
  SUBCASE("reset") {
    first->peer_reset();
    how = CloseReason::reset;
  }
  SUBCASE("end of stream") {
    first->peer_shutdown();
    how = CloseReason::peer;
  }
  REQUIRE(first->closed());
  CHECK(client.session->echoed == 1);  // the half echo does not count
  CHECK(client.session->stats.lost == 1);
  REQUIRE(client.disconnects.size() == 1);
  CHECK(client.disconnects[0].reason == how);
  CHECK(client.finished == 0);

  auto second = client.connect(loop);
  CHECK(second->take_output() == "two\n");  // again, whole
  CHECK(client.session->stats.resent == 1);
  second->feed("two\n");
  CHECK(second->take_output() == "three\n");
  second->feed("three\n");
  CHECK(second->closed());
  CHECK(client.finished == 1);
  CHECK(client.session->echoed == 3);
  CHECK(client.session->stats.connects == 2);
}

TEST_CASE("--interval: each message waits out the pause on the connection's timer; a loss in "
          "the pause resends nothing") {
  MemoryLoop loop;
  Client client({"a\n", "b\n", "c\n", "d\n"}, milliseconds(100));
  auto c = client.connect(loop);
  CHECK(c->take_output() == "a\n");
  c->feed("a\n");
  loop.advance(milliseconds(99));
  CHECK(c->output().empty());
  loop.advance(milliseconds(1));
  CHECK(c->take_output() == "b\n");
  c->feed("b\n");
  loop.advance(milliseconds(100));  // the same timer, re-armed
  CHECK(c->take_output() == "c\n");
  c->feed("c\n");
  c->peer_reset();  // in the pause: every message sent has been echoed
  CHECK(c->timers_pending() == 0);

  auto next = client.connect(loop);
  CHECK(next->take_output() == "d\n");  // at once: the pause went with the connection
  CHECK(client.session->stats.resent == 0);
  next->feed("d\n");
  CHECK(client.finished == 1);
}

TEST_CASE("nothing to send: finished once connected, not by a failed connect") {
  MemoryLoop loop;
  Client client({});
  auto handler = echo_client::echo_client_factory(client.session)();
  testing::fail_connect(loop, *handler, std::make_error_code(std::errc::timed_out));
  CHECK(client.finished == 0);
  CHECK(client.disconnects.size() == 1);

  auto c = client.connect(loop);
  CHECK(c->closed());
  CHECK(c->close_info()->reason == CloseReason::local);
  CHECK(c->output().empty());
  CHECK(client.finished == 1);
}
