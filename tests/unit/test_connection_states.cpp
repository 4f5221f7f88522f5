// Unit tests for the connection's state machine (lib/src/stream_connection.cpp): every
// transition, driven through the in-memory transport (testing::MemoryConnection on a
// MemoryLoop), checking the state and what the peer observes.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unistd.h>

#include "netloop/result.hpp"
#include "netloop/stream_connection.hpp"
#include "netloop/testing/memory_connection.hpp"
#include "netloop/testing/memory_loop.hpp"

using namespace netloop;
using netloop::testing::MemoryConnection;
using netloop::testing::MemoryLoop;
using netloop::testing::MemoryOptions;
using State = StreamConnection::State;

// States and reasons print by name in failed checks (found by argument lookup).
namespace netloop {
doctest::String toString(StreamConnection::State s) {
  return std::string(StreamConnection::to_string(s)).c_str();
}
doctest::String toString(CloseReason r) { return std::string(to_string(r)).c_str(); }
}  // namespace netloop

namespace {

constexpr Duration kOnce = Duration::zero();

// What a Scripted handler saw. Shared: the handler itself is destroyed at the close.
struct Seen {
  std::vector<std::string> data;  // each on_data call's input, whole
  std::string consumed;           // what on_data consumed, in order
  int peer_shutdowns = 0;
  std::string peer_shutdown_input;  // the input on_peer_shutdown was given
  int drains = 0;
  int closes = 0;
  std::optional<CloseInfo> close;  // what on_close was told
  bool open_in_on_close = false;
};

// What the handler does beyond recording; each hook is optional.
struct Script {
  std::function<void(Connection&)> on_open;
  // Default: consume everything.
  std::function<void(Connection&, Buffer&)> on_data;
  // Default: nothing (the connection stays half-closed).
  std::function<void(Connection&, Buffer&)> on_peer_shutdown;
  std::function<void(Connection&)> on_drain;
};

class Scripted final : public StreamHandler {
 public:
  Scripted(std::shared_ptr<Seen> seen, Script script)
      : seen_(std::move(seen)), script_(std::move(script)) {}

  void on_open(Connection& c) override {
    if (script_.on_open) script_.on_open(c);
  }
  void on_data(Connection& c, Buffer& in) override {
    std::string whole(in.view());
    seen_->data.push_back(whole);
    if (script_.on_data) {
      script_.on_data(c, in);
    } else {
      in.consume(in.size());
    }
    seen_->consumed += whole.substr(0, whole.size() - in.size());
  }
  void on_peer_shutdown(Connection& c, Buffer& in) override {
    ++seen_->peer_shutdowns;
    seen_->peer_shutdown_input = in.to_string();
    if (script_.on_peer_shutdown) script_.on_peer_shutdown(c, in);
  }
  void on_drain(Connection& c) override {
    ++seen_->drains;
    if (script_.on_drain) script_.on_drain(c);
  }
  void on_close(Connection& c, const CloseInfo& info) override {
    ++seen_->closes;
    seen_->close = info;
    seen_->open_in_on_close = c.is_open();
  }

 private:
  std::shared_ptr<Seen> seen_;
  Script script_;
};

std::unique_ptr<StreamHandler> scripted(std::shared_ptr<Seen> seen, Script script = {}) {
  return std::make_unique<Scripted>(std::move(seen), std::move(script));
}

State state_of(Connection& c) { return dynamic_cast<StreamConnection&>(c).state(); }

// Consumes every complete line, leaving a partial last one in the input.
void consume_lines(Connection&, Buffer& in) {
  size_t end = in.view().rfind('\n');
  if (end != std::string_view::npos) in.consume(end + 1);
}

// Brings an opened connection to `s` (a state before closed reachable from outside),
// with `pending` bytes of output the peer has not read where that state allows output.
// The peer must not end its stream after ours (MemoryOptions::peer_ends_after_ours).
void bring_to(MemoryConnection& c, State s, std::string_view pending) {
  switch (s) {
    case State::open:
      c.set_peer_reading(false);
      c.send(pending);
      break;
    case State::read_closed:
      c.peer_shutdown();
      c.set_peer_reading(false);
      c.send(pending);
      break;
    case State::write_closed: c.shutdown_write(); break;
    case State::flushing:
      c.set_peer_reading(false);
      c.send(pending);
      c.close();
      break;
    case State::lingering: c.close(); break;
    default: FAIL("not a state to bring a connection to: " << StreamConnection::to_string(s));
  }
  REQUIRE(c.state() == s);
}

// A file holding `content`, already unlinked: the descriptor is all that is left of it.
Fd temp_file(std::string_view content) {
  std::string path = (std::filesystem::temp_directory_path() / "netloop-states-XXXXXX").string();
  int fd = ::mkstemp(path.data());
  REQUIRE(fd >= 0);
  ::unlink(path.c_str());
  REQUIRE(::write(fd, content.data(), content.size()) == ssize_t(content.size()));
  return Fd(fd);
}

}  // namespace

// --- open -> read_closed -> closing -> closed --------------------------------------------

TEST_CASE("open -> read_closed: on_peer_shutdown is given the unconsumed input; the close that follows is reason peer") {
  enum class Then { stay, close_inside, shutdown_inside, test_closes, test_shuts_down_behind };
  Then then = Then::stay;
  SUBCASE("the handler keeps the connection half-closed") { then = Then::stay; }
  SUBCASE("the handler closes inside on_peer_shutdown") { then = Then::close_inside; }
  SUBCASE("the handler shuts down writing inside on_peer_shutdown") {
    then = Then::shutdown_inside;
  }
  SUBCASE("close() later") { then = Then::test_closes; }
  SUBCASE("shutdown_write() later, behind output the peer reads in two goes") {
    then = Then::test_shuts_down_behind;
  }

  auto seen = std::make_shared<Seen>();
  State inside = State::open;  // the state just after the handler's call, inside on_peer_shutdown
  int closes_inside = -1;
  Script s;
  s.on_data = consume_lines;
  s.on_peer_shutdown = [&](Connection& conn, Buffer& in) {
    in.consume(in.size());  // the last line, taken
    if (then == Then::close_inside) {
      conn.send("bye\n");
      conn.close();
    } else if (then == Then::shutdown_inside) {
      conn.send("bye\n");
      conn.shutdown_write();
    }
    inside = state_of(conn);
    closes_inside = seen->closes;
  };
  MemoryConnection c(scripted(seen, s));
  c.open();
  CHECK(c.state() == State::open);
  c.feed("first\nlast");
  CHECK(seen->consumed == "first\n");
  CHECK(c.unconsumed_input() == 4);

  c.peer_shutdown();
  CHECK(seen->peer_shutdowns == 1);
  CHECK(seen->peer_shutdown_input == "last");  // the last line, without its terminator
  CHECK(closes_inside == 0);

  switch (then) {
    case Then::stay:
      CHECK(inside == State::read_closed);
      CHECK(c.state() == State::read_closed);
      CHECK(c.is_open());
      CHECK(c.unconsumed_input() == 0);
      CHECK_FALSE(c.write_shut_down());
      c.send("still writing");  // our side is open
      CHECK(c.output() == "still writing");
      c.feed("after the end");  // the peer ended: nothing more arrives
      CHECK(seen->data.size() == 1);
      CHECK_FALSE(c.closed());
      CHECK(seen->closes == 0);
      return;
    case Then::close_inside:
    case Then::shutdown_inside:
      CHECK(inside == State::closing);  // decided; on_close waits for the callback's end
      CHECK(c.output() == "bye\n");
      break;
    case Then::test_closes:
      REQUIRE(c.state() == State::read_closed);
      c.send("bye\n");
      c.close();
      CHECK(c.output() == "bye\n");
      break;
    case Then::test_shuts_down_behind:
      REQUIRE(c.state() == State::read_closed);
      c.set_peer_reading(false);
      c.send("tail");
      c.shutdown_write();
      CHECK(c.state() == State::read_closed);
      CHECK_FALSE(c.write_shut_down());  // not before the output is read
      c.peer_reads(2);
      CHECK(c.output() == "ta");
      CHECK(c.state() == State::read_closed);
      CHECK_FALSE(c.write_shut_down());
      c.peer_reads();
      CHECK(c.output() == "tail");
      break;
  }
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::peer);
  CHECK_FALSE(c.close_info()->error);
  CHECK(c.write_shut_down());
  CHECK_FALSE(c.reset_sent());
  CHECK(seen->closes == 1);
  REQUIRE(seen->close);
  CHECK(seen->close->reason == CloseReason::peer);
  CHECK_FALSE(seen->open_in_on_close);
  CHECK(c.loop().stats().closed_peer == 1);
  CHECK(c.loop().stats().connections_open == 0);
}

TEST_CASE("open -> read_closed: the default on_peer_shutdown finishes sending, then closes") {
  struct Default final : StreamHandler {
    void on_data(Connection& c, Buffer& in) override {
      c.send(in.view());
      in.consume(in.size());
    }
  };
  MemoryConnection c(std::make_unique<Default>());
  c.set_peer_reading(false);
  c.feed("echo me");
  c.peer_shutdown();
  CHECK(c.state() == State::flushing);  // read_closed, then close(): output still to write
  CHECK_FALSE(c.write_shut_down());
  c.peer_reads();
  CHECK(c.output() == "echo me");
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::peer);
  CHECK_FALSE(c.reset_sent());
}

// --- open -> write_closed -> closed ------------------------------------------------------

TEST_CASE("open -> write_closed: our end of stream follows the output; the peer still sends; its end closes") {
  bool pending = false;
  bool peer_ends_after_ours = false;
  SUBCASE("nothing pending; the peer ends later") {}
  SUBCASE("output pending; the peer ends later") { pending = true; }
  SUBCASE("nothing pending; the peer ends after ours") { peer_ends_after_ours = true; }
  SUBCASE("output pending; the peer ends after ours") {
    pending = true;
    peer_ends_after_ours = true;
  }
  CAPTURE(pending);
  CAPTURE(peer_ends_after_ours);

  auto seen = std::make_shared<Seen>();
  Script s;
  s.on_data = [](Connection& conn, Buffer& in) {  // an echo: ignored once our side is shut
    conn.send(in.view());
    in.consume(in.size());
  };
  MemoryOptions o;
  o.peer_ends_after_ours = peer_ends_after_ours;
  MemoryConnection c(scripted(seen, s), o);
  c.feed("hello");
  CHECK(c.take_output() == "hello");

  if (pending) {
    c.set_peer_reading(false);
    c.send("response");
    c.shutdown_write();
    CHECK(c.state() == State::open);  // the end of stream waits behind the output
    CHECK(c.is_open());
    CHECK_FALSE(c.write_shut_down());
    c.send("late");  // nothing after the end of stream
    CHECK(c.pending() == 8);
    c.peer_reads(3);
    CHECK(c.output() == "res");
    CHECK(c.state() == State::open);
    CHECK_FALSE(c.write_shut_down());
    c.peer_reads();
    CHECK(c.take_output() == "response");
    CHECK(seen->drains == 1);  // the backlog drained while still open for reading
  } else {
    c.shutdown_write();
  }
  CHECK(c.write_shut_down());

  if (!peer_ends_after_ours) {
    CHECK(c.state() == State::write_closed);
    CHECK(c.is_open());
    c.feed("still talking");
    REQUIRE(seen->data.size() == 2);
    CHECK(seen->data.back() == "still talking");  // on_data runs in write_closed
    CHECK(c.output().empty());                    // the echo went nowhere
    CHECK_FALSE(c.closed());
    c.peer_shutdown();
  }
  CHECK(seen->peer_shutdowns == 1);
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::peer);
  CHECK_FALSE(c.close_info()->error);
  CHECK_FALSE(c.reset_sent());
  CHECK(seen->closes == 1);
  CHECK(c.loop().stats().closed_peer == 1);
}

TEST_CASE("write_closed -> lingering: close() after shutdown_write waits for the peer's end") {
  auto seen = std::make_shared<Seen>();
  MemoryOptions o;
  o.peer_ends_after_ours = false;
  MemoryConnection c(scripted(seen), o);
  c.open();
  c.shutdown_write();
  REQUIRE(c.state() == State::write_closed);
  c.close();
  CHECK(c.state() == State::lingering);
  c.feed("discarded");
  CHECK(seen->data.empty());
  c.peer_shutdown();
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::local);
  CHECK_FALSE(c.reset_sent());
}

// --- open -> flushing -> lingering -> closed ---------------------------------------------

TEST_CASE("open -> flushing -> lingering -> closed: close() writes what is buffered, then lingers") {
  bool peer_ends_after_ours = true;
  SUBCASE("the peer ends its stream after ours") {}
  SUBCASE("the peer keeps its side open") { peer_ends_after_ours = false; }
  CAPTURE(peer_ends_after_ours);

  auto seen = std::make_shared<Seen>();
  MemoryOptions o;
  o.peer_ends_after_ours = peer_ends_after_ours;
  MemoryConnection c(scripted(seen), o);
  c.open();
  c.set_peer_reading(false);
  c.send("buffered output");
  c.close();
  CHECK(c.state() == State::flushing);
  CHECK_FALSE(c.is_open());
  CHECK_FALSE(c.write_shut_down());
  c.send("after close");  // ignored
  CHECK(c.pending() == 15);
  c.feed("unread");  // flushing does not read
  CHECK(c.unread() == 6);
  CHECK(seen->data.empty());

  c.peer_reads(8);
  CHECK(c.output() == "buffered");
  CHECK(c.state() == State::flushing);
  CHECK_FALSE(c.write_shut_down());
  c.peer_reads();
  CHECK(c.output() == "buffered output");
  CHECK(c.write_shut_down());
  if (!peer_ends_after_ours) {
    CHECK(c.state() == State::lingering);
    CHECK(c.unread() == 0);  // read, and dropped
    CHECK(seen->data.empty());
    CHECK_FALSE(c.closed());
    c.peer_shutdown();
  }
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::local);
  CHECK_FALSE(c.close_info()->error);
  CHECK_FALSE(c.reset_sent());
  CHECK(seen->data.empty());  // nothing read after close() reached the handler
  CHECK(seen->closes == 1);
  CHECK(c.loop().stats().closed_local == 1);
}

TEST_CASE("flushing -> closed: a peer that never reads is reset after close_timeout") {
  Duration close_timeout = seconds(30);
  SUBCASE("the default, 30 s") {}
  SUBCASE("a shorter one, 2 s") { close_timeout = seconds(2); }
  CAPTURE(close_timeout.count());

  auto seen = std::make_shared<Seen>();
  MemoryOptions o;
  o.close_timeout = close_timeout;
  MemoryConnection c(scripted(seen), o);
  c.open();
  c.set_peer_reading(false);
  c.send(std::string(1000, 'x'));
  c.close();
  REQUIRE(c.state() == State::flushing);
  c.advance(close_timeout - seconds(1));
  CHECK(c.state() == State::flushing);
  CHECK_FALSE(c.reset_sent());
  c.advance(seconds(2));
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::error);
  CHECK(c.close_info()->error == std::errc::timed_out);
  CHECK(c.reset_sent());
  CHECK(c.output().empty());
  CHECK(seen->closes == 1);
  CHECK(c.loop().stats().write_timeouts == 1);
  CHECK(c.loop().stats().closed_error == 1);
}

TEST_CASE("issue 15: close() with a peer that never reads is closed (reset) after advance(3600 s)") {
  auto seen = std::make_shared<Seen>();
  MemoryConnection c(scripted(seen));
  c.open();
  c.set_peer_reading(false);
  c.send("never read");
  c.close();
  c.advance(seconds(3600));
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::error);
  CHECK(c.close_info()->error == std::errc::timed_out);
  CHECK(c.reset_sent());
}

// --- lingering ---------------------------------------------------------------------------

TEST_CASE("lingering: input is read and discarded until the peer's end or linger_timeout") {
  bool by_timeout = false;
  SUBCASE("until the peer's end") {}
  SUBCASE("until linger_timeout (5 s)") { by_timeout = true; }
  CAPTURE(by_timeout);

  auto seen = std::make_shared<Seen>();
  MemoryOptions o;
  o.peer_ends_after_ours = false;
  MemoryConnection c(scripted(seen), o);
  c.feed("request");
  REQUIRE(seen->data.size() == 1);
  c.close();  // nothing buffered: straight to lingering
  CHECK(c.state() == State::lingering);
  CHECK_FALSE(c.is_open());
  CHECK(c.write_shut_down());
  c.feed("more input the handler never sees");
  CHECK(c.unread() == 0);  // read...
  CHECK(seen->data.size() == 1);  // ...and dropped
  CHECK(c.bytes_in() == 7 + 33);
  c.advance(seconds(4));
  CHECK(c.state() == State::lingering);
  c.feed(std::string(200'000, 'z'));  // more than one wake-up's worth
  CHECK(c.unread() == 0);
  CHECK(seen->data.size() == 1);
  if (by_timeout) {
    c.advance(seconds(1));
  } else {
    c.peer_shutdown();
  }
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::local);
  CHECK_FALSE(c.close_info()->error);
  CHECK_FALSE(c.reset_sent());
  CHECK(seen->closes == 1);
  CHECK(c.loop().stats().write_timeouts == 0);
}

TEST_CASE("lingering: a zero linger_timeout closes as soon as the output is written") {
  MemoryOptions o;
  o.peer_ends_after_ours = false;
  o.linger_timeout = Duration::zero();
  auto seen = std::make_shared<Seen>();
  MemoryConnection c(scripted(seen), o);
  c.open();
  c.set_peer_reading(false);
  c.send("last");
  c.close();
  CHECK(c.state() == State::flushing);
  c.peer_reads();
  CHECK(c.closed());
  CHECK(c.output() == "last");
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::local);
}

// --- the write stall ---------------------------------------------------------------------

TEST_CASE("write stall: output with no progress for write_timeout resets; progress pushes it back") {
  auto seen = std::make_shared<Seen>();
  MemoryConnection c(scripted(seen));
  c.open();
  c.set_peer_reading(false);
  c.send("0123456789");
  c.advance(seconds(59));
  CHECK(c.state() == State::open);
  c.peer_reads(1);  // progress at 59 s: the deadline moves to 119 s
  CHECK(c.output() == "0");
  c.advance(seconds(59));
  CHECK(c.state() == State::open);
  c.peer_reads(1);  // at 118 s: to 178 s
  c.advance(seconds(59));
  CHECK(c.state() == State::open);
  CHECK(c.loop().stats().write_timeouts == 0);
  c.advance(seconds(2));
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::error);
  CHECK(c.close_info()->error == std::errc::timed_out);
  CHECK(c.reset_sent());
  CHECK(c.output() == "01");
  CHECK(c.loop().stats().write_timeouts == 1);
}

TEST_CASE("write stall: the half-closed states are guarded too; nothing pending or a zero write_timeout never times out") {
  SUBCASE("read_closed with output the peer does not read") {
    MemoryOptions o;
    o.peer_ends_after_ours = false;
    MemoryConnection c(scripted(std::make_shared<Seen>()), o);
    c.open();
    bring_to(c, State::read_closed, "stuck");
    c.advance(seconds(59));
    CHECK(c.state() == State::read_closed);
    c.advance(seconds(1));
    CHECK(c.closed());
    REQUIRE(c.close_info());
    CHECK(c.close_info()->error == std::errc::timed_out);
    CHECK(c.reset_sent());
  }
  SUBCASE("shutdown_write() behind output the peer does not read") {
    MemoryConnection c(scripted(std::make_shared<Seen>()));
    c.open();
    c.set_peer_reading(false);
    c.send("stuck");
    c.shutdown_write();
    c.advance(seconds(60));
    CHECK(c.closed());
    CHECK(c.reset_sent());  // reset, not an orderly end
    REQUIRE(c.close_info());
    CHECK(c.close_info()->error == std::errc::timed_out);
  }
  SUBCASE("nothing pending") {
    MemoryConnection c(scripted(std::make_shared<Seen>()));
    c.open();
    c.advance(seconds(3600));
    CHECK(c.state() == State::open);
  }
  SUBCASE("write_timeout zero") {
    MemoryOptions o;
    o.write_timeout = Duration::zero();
    MemoryConnection c(scripted(std::make_shared<Seen>()), o);
    c.open();
    c.set_peer_reading(false);
    c.send("stuck forever");
    c.advance(seconds(3600));
    CHECK(c.state() == State::open);
    CHECK(c.pending() == 13);
  }
}

// --- abort -------------------------------------------------------------------------------

TEST_CASE("abort from every state before closed: closing, then closed with a reset; output dropped") {
  State from = State::open;
  SUBCASE("open") { from = State::open; }
  SUBCASE("read_closed") { from = State::read_closed; }
  SUBCASE("write_closed") { from = State::write_closed; }
  SUBCASE("flushing") { from = State::flushing; }
  SUBCASE("lingering") { from = State::lingering; }
  CAPTURE(from);

  auto seen = std::make_shared<Seen>();
  MemoryOptions o;
  o.peer_ends_after_ours = false;
  MemoryConnection c(scripted(seen), o);
  c.feed("in");
  c.start_timer(seconds(1), kOnce, [](Connection&) {});
  bring_to(c, from, "dropped");
  // The rules alone (not MemoryConnection's completing wrapper): asked for from outside
  // any callback, the close is decided now and completes after the batch.
  c.StreamConnection::abort();
  CHECK(c.state() == State::closing);
  CHECK_FALSE(c.is_open());
  CHECK(c.pending() == 0);
  CHECK(seen->closes == 0);
  c.memory_loop().settle();
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::aborted);
  CHECK_FALSE(c.close_info()->error);
  CHECK(c.reset_sent());
  CHECK(c.output().empty());  // what was pending never reached the peer
  CHECK(seen->closes == 1);
  CHECK(c.timers_pending() == 0);
  CHECK(c.loop().stats().closed_aborted == 1);
  c.abort();  // once closed, harmless
  CHECK(seen->closes == 1);
}

TEST_CASE("abort outranks an orderly close decided earlier in the same callback") {
  enum class Where { data_with_output, data_no_output, peer_shutdown, protocol_close };
  Where where = Where::data_with_output;
  SUBCASE("close() with output pending, then abort()") { where = Where::data_with_output; }
  SUBCASE("close() lingering, then abort()") { where = Where::data_no_output; }
  SUBCASE("close() after the peer's end (closing, reason peer), then abort()") {
    where = Where::peer_shutdown;
  }
  SUBCASE("close(code, text), then abort()") { where = Where::protocol_close; }

  auto seen = std::make_shared<Seen>();
  std::vector<State> states;  // inside the callback: after close(), after abort()
  int closes_inside = -1;
  auto close_then_abort = [&](Connection& conn) {
    if (where == Where::protocol_close) {
      conn.close(make_error(EPROTO), "bad");
    } else {
      conn.close();
    }
    states.push_back(state_of(conn));
    conn.abort();
    states.push_back(state_of(conn));
    conn.close();  // too late: nothing changes
    conn.send("ignored");
    states.push_back(state_of(conn));
    closes_inside = seen->closes;
  };
  Script s;
  s.on_data = [&](Connection& conn, Buffer& in) {
    in.consume(in.size());
    if (where == Where::data_with_output) conn.send("pending");
    close_then_abort(conn);
  };
  s.on_peer_shutdown = [&](Connection& conn, Buffer&) { close_then_abort(conn); };
  MemoryOptions o;
  o.peer_ends_after_ours = false;
  MemoryConnection c(scripted(seen, s), o);
  c.set_peer_reading(false);
  if (where == Where::peer_shutdown) {
    c.peer_shutdown();
  } else {
    c.feed("go");
  }
  REQUIRE(states.size() == 3);
  State after_close = where == Where::data_with_output ? State::flushing
                      : where == Where::peer_shutdown  ? State::closing
                                                       : State::lingering;
  CHECK(states[0] == after_close);
  CHECK(states[1] == State::closing);
  CHECK(states[2] == State::closing);
  CHECK(closes_inside == 0);  // on_close waits for the callback to return
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::aborted);
  CHECK(c.close_info()->text.empty());
  CHECK(c.reset_sent());
  CHECK(c.output().empty());
  CHECK(seen->closes == 1);
  REQUIRE(seen->close);
  CHECK(seen->close->reason == CloseReason::aborted);
  CHECK(c.loop().stats().closed_aborted == 1);
  CHECK(c.loop().stats().closed_local + c.loop().stats().closed_peer +
            c.loop().stats().closed_protocol == 0);
}

// --- close with the handler's own reason -------------------------------------------------

TEST_CASE("close(code, text): on_close hears reason protocol with them; closed_protocol counts it") {
  enum class How { at_once, behind_output, after_peer_end, from_test };
  How how = How::at_once;
  SUBCASE("nothing pending") { how = How::at_once; }
  SUBCASE("behind output the peer reads later") { how = How::behind_output; }
  SUBCASE("after the peer's end (read_closed): still protocol, not peer") {
    how = How::after_peer_end;
  }
  SUBCASE("called by the test, not a callback") { how = How::from_test; }

  auto seen = std::make_shared<Seen>();
  Script s;
  s.on_data = [&](Connection& conn, Buffer& in) {
    if (in.view().find("BAD\n") == std::string_view::npos) return;  // wait for the line
    in.consume(in.size());
    conn.send("-ERR bad command\n");
    conn.close(make_error(EPROTO), "bad command");
    CHECK_FALSE(conn.is_open());
  };
  s.on_peer_shutdown = [&](Connection& conn, Buffer&) {
    conn.send("-ERR bad command\n");
    conn.close(make_error(EPROTO), "bad command");
  };
  MemoryConnection c(scripted(seen, s));
  c.open();
  switch (how) {
    case How::at_once: c.feed("BAD\n"); break;
    case How::behind_output:
      c.set_peer_reading(false);
      c.feed("BA");
      c.feed("D\n");
      CHECK(c.state() == State::flushing);
      c.peer_reads(5);
      CHECK(c.state() == State::flushing);
      c.peer_reads();
      break;
    case How::after_peer_end: c.peer_shutdown(); break;
    case How::from_test:
      c.send("-ERR bad command\n");
      c.close(make_error(EPROTO), "bad command");
      break;
  }
  CHECK(c.output() == "-ERR bad command\n");
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::protocol);
  CHECK(c.close_info()->error == make_error(EPROTO));
  CHECK(c.close_info()->text == "bad command");
  CHECK_FALSE(c.reset_sent());
  REQUIRE(seen->close);
  CHECK(seen->close->reason == CloseReason::protocol);
  CHECK(seen->close->error == make_error(EPROTO));
  CHECK(seen->close->text == "bad command");
  const LoopStats& st = c.loop().stats();
  CHECK(st.closed_protocol == 1);
  CHECK(st.closed_local == 0);
  CHECK(st.closed_peer == 0);
  CHECK(st.connections_open == 0);
}

// --- the idle timeout --------------------------------------------------------------------

TEST_CASE("set_idle_timeout: closes with reason idle after that long without a byte either way") {
  auto seen = std::make_shared<Seen>();
  MemoryConnection c(scripted(seen));
  c.open();
  c.set_idle_timeout(seconds(10));
  CHECK(c.timers_pending() == 1);
  c.advance(seconds(9));
  CHECK(c.state() == State::open);
  c.advance(seconds(1));
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::idle);
  CHECK(c.close_info()->error == std::errc::timed_out);
  CHECK_FALSE(c.reset_sent());
  CHECK(seen->closes == 1);
  CHECK(c.timers_pending() == 0);
  CHECK(c.loop().stats().closed_idle == 1);
}

TEST_CASE("set_idle_timeout: bytes either way push it back, on one timer") {
  bool received = true;
  SUBCASE("bytes received") {}
  SUBCASE("bytes sent") { received = false; }
  CAPTURE(received);

  MemoryConnection c(scripted(std::make_shared<Seen>()));
  c.open();
  c.set_idle_timeout(seconds(10));
  for (int i = 0; i < 5; ++i) {  // 5 s apart: never idle for 10 s
    c.advance(seconds(5));
    if (received) {
      c.feed("ping");
    } else {
      c.send("pong");
    }
    CHECK(c.timers_pending() == 1);
  }
  CHECK(c.state() == State::open);  // at 25 s, last activity at 25 s
  c.advance(seconds(9));
  CHECK(c.state() == State::open);
  c.advance(seconds(1));
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::idle);
}

TEST_CASE("set_idle_timeout: output waiting for a peer that does not read is not idleness") {
  MemoryConnection c(scripted(std::make_shared<Seen>()));
  c.open();
  c.set_peer_reading(false);
  c.send("waiting");
  c.set_idle_timeout(seconds(10));
  c.advance(seconds(25));  // well past the idle timeout; short of the write stall
  CHECK(c.state() == State::open);
  CHECK(c.timers_pending() == 1);
  c.peer_reads();  // at 25 s: the output moves, and the connection is then silent
  CHECK(c.output() == "waiting");
  c.advance(seconds(9));
  CHECK(c.state() == State::open);
  c.advance(seconds(1));
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::idle);
}

TEST_CASE("set_idle_timeout: zero switches it off; setting it again moves the one timer") {
  MemoryConnection c(scripted(std::make_shared<Seen>()));
  c.open();
  SUBCASE("zero") {
    c.set_idle_timeout(seconds(10));
    c.advance(seconds(5));
    c.set_idle_timeout(Duration::zero());
    CHECK(c.timers_pending() == 0);
    c.advance(seconds(3600));
    CHECK(c.state() == State::open);
  }
  SUBCASE("shorter") {
    c.set_idle_timeout(seconds(10));
    c.set_idle_timeout(seconds(2));
    CHECK(c.timers_pending() == 1);
    c.advance(seconds(2));
    CHECK(c.closed());
    REQUIRE(c.close_info());
    CHECK(c.close_info()->reason == CloseReason::idle);
  }
  SUBCASE("longer") {
    c.set_idle_timeout(seconds(2));
    c.set_idle_timeout(seconds(10));
    CHECK(c.timers_pending() == 1);
    c.advance(seconds(9));
    CHECK(c.state() == State::open);
    c.advance(seconds(1));
    CHECK(c.closed());
  }
}

// --- limits and resets -------------------------------------------------------------------

TEST_CASE("unconsumed input past max_input fails the connection with EMSGSIZE") {
  bool one_piece = false;
  SUBCASE("piece by piece") {}
  SUBCASE("in one piece") { one_piece = true; }
  auto seen = std::make_shared<Seen>();
  Script s;
  s.on_data = [](Connection&, Buffer&) {};  // waits for more, consuming nothing
  MemoryOptions o;
  o.max_input = 100;
  MemoryConnection c(scripted(seen, s), o);
  if (one_piece) {
    c.feed(std::string(101, 'a'));
  } else {
    c.feed(std::string(100, 'a'));
    CHECK(c.state() == State::open);  // at the limit: still fine
    CHECK(c.unconsumed_input() == 100);
    c.feed("b");
  }
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::error);
  CHECK(c.close_info()->error == std::errc::message_size);
  CHECK(c.reset_sent());  // input left unread: a reset, not an orderly end of stream
  CHECK(seen->closes == 1);
  CHECK(c.loop().stats().closed_error == 1);
}

TEST_CASE("peer_reset from every state before closed: closed with reason reset") {
  State from = State::open;
  SUBCASE("open") { from = State::open; }
  SUBCASE("read_closed") { from = State::read_closed; }
  SUBCASE("write_closed") { from = State::write_closed; }
  SUBCASE("flushing") { from = State::flushing; }
  SUBCASE("lingering") { from = State::lingering; }
  CAPTURE(from);

  auto seen = std::make_shared<Seen>();
  MemoryOptions o;
  o.peer_ends_after_ours = false;
  MemoryConnection c(scripted(seen), o);
  c.feed("in");
  c.set_idle_timeout(seconds(10));
  bring_to(c, from, "pending");
  c.peer_reset();
  CHECK(c.closed());
  REQUIRE(c.close_info());
  CHECK(c.close_info()->reason == CloseReason::reset);
  CHECK(c.close_info()->error == std::errc::connection_reset);
  CHECK(c.output().empty());
  CHECK(seen->closes == 1);
  CHECK(c.timers_pending() == 0);
  CHECK(c.loop().stats().closed_reset == 1);
}

// --- several connections on one MemoryLoop -----------------------------------------------

TEST_CASE("a close asked for from another connection's callback completes after that callback returns") {
  enum class How { abort, close_after_peer_end, close_lingering, from_loop_timer };
  How how = How::abort;
  SUBCASE("abort() from a's on_data") { how = How::abort; }
  SUBCASE("close() from a's on_data, b's peer having ended") { how = How::close_after_peer_end; }
  SUBCASE("close() from a's on_data, b's peer still open") { how = How::close_lingering; }
  SUBCASE("abort() from a loop timer") { how = How::from_loop_timer; }

  MemoryLoop loop;
  auto seen_a = std::make_shared<Seen>();
  auto seen_b = std::make_shared<Seen>();
  StreamConnection* b_ptr = nullptr;
  State b_inside = State::closed;
  int b_closes_inside = -1;
  bool b_open_inside = true;
  auto close_b = [&] {
    if (how == How::abort || how == How::from_loop_timer) {
      b_ptr->abort();
    } else {
      b_ptr->close();
    }
    b_inside = b_ptr->state();
    b_open_inside = b_ptr->is_open();
    b_closes_inside = seen_b->closes;
  };
  Script sa;
  sa.on_data = [&](Connection&, Buffer& in) {
    in.consume(in.size());
    close_b();
  };
  MemoryOptions ob;
  ob.peer_ends_after_ours = how != How::close_lingering;
  MemoryConnection a(loop, scripted(seen_a, sa));
  MemoryConnection b(loop, scripted(seen_b), ob);
  b_ptr = &b;
  a.open();
  b.open();
  if (how == How::close_after_peer_end) {
    b.peer_shutdown();
    REQUIRE(b.state() == State::read_closed);
  }
  if (how == How::from_loop_timer) {
    loop.loop().run_after(seconds(1), close_b);
    loop.advance(seconds(1));
  } else {
    a.feed("go");
  }
  CHECK_FALSE(b_open_inside);
  CHECK(b_closes_inside == 0);  // not under the caller's feet
  switch (how) {
    case How::abort:
    case How::from_loop_timer:
    case How::close_after_peer_end: CHECK(b_inside == State::closing); break;
    case How::close_lingering: CHECK(b_inside == State::lingering); break;
  }
  if (how == How::close_lingering) {
    CHECK(b.state() == State::lingering);
    b.peer_shutdown();
  }
  CHECK(b.closed());
  CHECK(seen_b->closes == 1);
  REQUIRE(b.close_info());
  CloseReason want = how == How::abort || how == How::from_loop_timer ? CloseReason::aborted
                     : how == How::close_after_peer_end               ? CloseReason::peer
                                                                      : CloseReason::local;
  CHECK(b.close_info()->reason == want);
  CHECK(a.state() == State::open);  // the caller is untouched
  CHECK(seen_a->closes == 0);
}

TEST_CASE("connections on one MemoryLoop share one clock: one advance fires both, in deadline order") {
  MemoryLoop loop;
  MemoryConnection a(loop, scripted(std::make_shared<Seen>()));
  MemoryConnection b(loop, scripted(std::make_shared<Seen>()));
  a.open();
  b.open();
  CHECK(&a.loop() == &b.loop());
  const TimePoint t0 = loop.now();
  std::vector<std::pair<std::string, Duration>> fired;
  auto record = [&](std::string name) {
    return [&fired, &t0, name](Connection& conn) { fired.emplace_back(name, conn.now() - t0); };
  };
  a.start_timer(seconds(3), kOnce, record("a@3"));
  b.start_timer(seconds(2), kOnce, record("b@2"));
  a.start_timer(seconds(1), kOnce, record("a@1"));
  b.start_timer(seconds(4), kOnce, record("b@4"));
  loop.advance(seconds(5));
  REQUIRE(fired.size() == 4);
  CHECK(fired[0].first == "a@1");
  CHECK(fired[0].second == seconds(1));
  CHECK(fired[1].first == "b@2");
  CHECK(fired[1].second == seconds(2));
  CHECK(fired[2].first == "a@3");
  CHECK(fired[2].second == seconds(3));
  CHECK(fired[3].first == "b@4");
  CHECK(fired[3].second == seconds(4));
  CHECK(a.now() == t0 + seconds(5));
  CHECK(b.now() == a.now());
  a.advance(seconds(1));  // either connection's advance moves the one clock
  CHECK(b.now() == t0 + seconds(6));
}

// --- timers ------------------------------------------------------------------------------

TEST_CASE("timers: the callback is given its connection; restart_timer re-arms a fired one-shot") {
  MemoryConnection c(scripted(std::make_shared<Seen>()));
  c.open();
  int fired = 0;
  Connection* given = nullptr;
  TimerId id = c.start_timer(seconds(1), kOnce, [&](Connection& conn) {
    given = &conn;
    ++fired;
  });
  REQUIRE(id);
  CHECK(c.timers_pending() == 1);
  c.advance(seconds(1));
  CHECK(fired == 1);
  CHECK(given == &c);
  CHECK(c.timers_pending() == 0);
  CHECK_FALSE(c.restart_timer(id, seconds(2)));  // it had fired...
  CHECK(c.timers_pending() == 1);                // ...and is armed again
  c.advance(seconds(1));
  CHECK(fired == 1);
  c.advance(seconds(1));
  CHECK(fired == 2);
  CHECK(c.cancel_timer(id) == false);  // fired: no longer pending, and now forgotten
  CHECK_FALSE(c.restart_timer(id, seconds(1)));
  c.advance(seconds(5));
  CHECK(fired == 2);
}

TEST_CASE("timers: a callback may cancel or restart its own timer") {
  MemoryConnection c(scripted(std::make_shared<Seen>()));
  c.open();
  SUBCASE("a repeating timer cancels itself on its third call") {
    int calls = 0;
    bool cancelled = false;
    TimerId id;
    id = c.start_timer(seconds(1), seconds(1), [&](Connection& conn) {
      if (++calls == 3) cancelled = conn.cancel_timer(id);
    });
    c.advance(seconds(10));
    CHECK(calls == 3);
    CHECK(cancelled);  // it was pending: re-armed before its callback ran
    CHECK(c.timers_pending() == 0);
  }
  SUBCASE("a one-shot cancels itself") {
    int calls = 0;
    TimerId id;
    id = c.start_timer(seconds(1), kOnce, [&](Connection& conn) {
      ++calls;
      CHECK_FALSE(conn.cancel_timer(id));  // already fired: not pending
      CHECK_FALSE(conn.cancel_timer(id));
    });
    c.advance(seconds(10));
    CHECK(calls == 1);
    CHECK_FALSE(c.restart_timer(id, seconds(1)));  // cancelled: forgotten, not re-armed
    c.advance(seconds(10));
    CHECK(calls == 1);
  }
  SUBCASE("a one-shot re-arms itself twice") {
    std::vector<Duration> at;
    const TimePoint t0 = c.now();
    TimerId id;
    id = c.start_timer(seconds(1), kOnce, [&](Connection& conn) {
      at.push_back(conn.now() - t0);
      if (at.size() < 3) conn.restart_timer(id, seconds(2));
    });
    c.advance(seconds(10));
    REQUIRE(at.size() == 3);
    CHECK(at[0] == seconds(1));
    CHECK(at[1] == seconds(3));
    CHECK(at[2] == seconds(5));
    CHECK(c.timers_pending() == 0);
  }
  CHECK(c.state() == State::open);
}

TEST_CASE("timers: all of them are cancelled at the close, the idle timeout's included") {
  bool orderly = true;
  SUBCASE("close()") {}
  SUBCASE("abort()") { orderly = false; }
  auto seen = std::make_shared<Seen>();
  MemoryConnection c(scripted(seen));
  c.open();
  int fired = 0;
  auto count = [&](Connection&) { ++fired; };
  TimerId one = c.start_timer(seconds(1), kOnce, count);
  c.start_timer(seconds(2), seconds(2), count);
  c.start_timer(seconds(100), kOnce, count);
  c.set_idle_timeout(seconds(30));
  CHECK(c.timers_pending() == 4);
  if (orderly) {
    c.close();
  } else {
    c.abort();
  }
  REQUIRE(c.closed());
  CHECK(c.timers_pending() == 0);
  c.advance(seconds(3600));
  CHECK(fired == 0);
  CHECK_FALSE(c.restart_timer(one, seconds(1)));
  CHECK_FALSE(c.cancel_timer(one));
  CHECK_FALSE(c.start_timer(seconds(1), kOnce, count));  // a closed connection has no timers
  c.set_idle_timeout(seconds(1));
  CHECK(c.timers_pending() == 0);
  c.advance(seconds(10));
  CHECK(fired == 0);
  CHECK(seen->closes == 1);
}

// --- gather send -------------------------------------------------------------------------

TEST_CASE("gather send: the pieces in order, in one call, whether the peer reads or not") {
  auto seen = std::make_shared<Seen>();
  MemoryConnection c(scripted(seen));
  c.open();
  SUBCASE("the peer reads: all at once") {
    c.send({"alpha", "", "beta", "gamma"});
    CHECK(c.output() == "alphabetagamma");
    CHECK(c.pending() == 0);
    CHECK(c.send_calls() == 1);
  }
  SUBCASE("the peer does not read: buffered whole, read in pieces, later sends behind it") {
    c.set_peer_reading(false);
    c.send({"alpha", "", "beta", "gamma"});
    CHECK(c.output().empty());
    CHECK(c.pending() == 14);
    c.send({"-", "delta"});  // behind the backlog
    CHECK(c.pending() == 20);
    c.peer_reads(7);
    CHECK(c.output() == "alphabe");
    c.send("!");
    c.send({"", ""});  // nothing at all: nothing happens
    CHECK(c.pending() == 14);
    c.peer_reads();
    CHECK(c.output() == "alphabetagamma-delta!");
    CHECK(c.pending() == 0);
    CHECK(seen->drains == 1);
  }
  SUBCASE("the kernel takes part of it: the rest is buffered, in order") {
    bool sent = false;
    Script s;
    s.on_drain = [&](Connection& conn) {
      if (sent) return;
      sent = true;
      conn.send({"abc", "defg", "hi"});  // the peer has room for 5 of these 9 bytes
    };
    auto seen2 = std::make_shared<Seen>();
    MemoryConnection p(scripted(seen2, s));
    p.open();
    p.set_peer_reading(false);
    p.send("x");
    p.peer_reads(6);  // "x", then on_drain's gather send, cut after "de"
    CHECK(p.output() == "xabcde");
    CHECK(p.pending() == 4);
    p.peer_reads();
    CHECK(p.output() == "xabcdefghi");
    CHECK(seen2->drains == 2);
  }
  SUBCASE("more than 64 pieces") {
    std::vector<std::string> store;
    std::string want;
    for (int i = 0; i < 100; ++i) {
      store.push_back(std::to_string(i) + ",");
      want += store.back();
    }
    std::vector<std::string_view> views(store.begin(), store.end());
    bool reading = true;
    SUBCASE("the peer reads") {}
    SUBCASE("the peer does not read") { reading = false; }
    c.set_peer_reading(reading);
    c.send(std::span<const std::string_view>(views));
    if (!reading) {
      CHECK(c.pending() == want.size());
      c.peer_reads(50);
      CHECK(c.output() == want.substr(0, 50));
      c.peer_reads();
    }
    CHECK(c.output() == want);
  }
}

TEST_CASE("gather send behind a pending send_file waits its turn") {
  std::string file;
  for (int i = 0; i < 1000; ++i) file += "file-" + std::to_string(i) + ";";
  auto seen = std::make_shared<Seen>();
  MemoryConnection c(scripted(seen));
  c.open();
  c.set_peer_reading(false);
  c.send("head:");
  c.send_file(temp_file(file), 0, file.size());
  c.send({"[a]", "[b]", "[c]"});
  c.send("tail");
  CHECK(c.pending() == 5 + file.size() + 9 + 4);
  c.peer_reads(100);
  CHECK(c.output() == "head:" + file.substr(0, 95));
  c.peer_reads();
  CHECK(c.output() == "head:" + file + "[a][b][c]tail");
  CHECK(c.pending() == 0);
  CHECK_FALSE(c.closed());
}

TEST_CASE("send_file from a shared descriptor: in order, held until sent, a short file resets") {
  const std::string file = "0123456789abcdefghij";
  auto seen = std::make_shared<Seen>();
  MemoryConnection c(scripted(seen));
  Connection& conn = c;  // the handler's view (MemoryConnection hides the overload)
  c.open();
  c.set_peer_reading(false);
  SharedFd shared = std::make_shared<const Fd>(temp_file(file));
  std::weak_ptr<const Fd> watch = shared;
  SUBCASE("queued behind earlier output, then the descriptor is let go") {
    c.send("before:");
    conn.send_file("head:", shared, 5, 10);
    conn.send_file({}, shared, 0, 3);  // the same descriptor twice in the queue
    c.send(":after");
    shared.reset();  // the caller (a file cache) lets go: the connection still holds it
    CHECK_FALSE(watch.expired());
    CHECK(c.pending() == 7 + 5 + 10 + 3 + 6);
    c.peer_reads(9);
    CHECK(c.output() == "before:he");
    c.peer_reads();
    CHECK(c.output() == "before:head:56789abcde012:after");
    CHECK(watch.expired());  // sent: the last reference went with it
    CHECK_FALSE(c.closed());
  }
  SUBCASE("shorter than promised: reset") {
    conn.send_file("head:", shared, 15, 10);  // 5 bytes there, 10 promised
    c.peer_reads();
    CHECK(c.closed());
    REQUIRE(c.close_info());
    CHECK(c.close_info()->reason == CloseReason::error);
    shared.reset();
    CHECK(watch.expired());
  }
}

TEST_CASE("gather send counts toward the water marks, output_full() on the crossing") {
  auto seen = std::make_shared<Seen>();
  MemoryOptions o;
  o.high_water = 10;
  o.low_water = 4;
  MemoryConnection c(scripted(seen), o);
  c.open();
  c.set_peer_reading(false);
  SUBCASE("one gather send crosses it") {
    c.send({"12345", "6789"});
    CHECK_FALSE(c.output_full());
    c.send({"0", "x"});
    CHECK(c.output_full());
  }
  SUBCASE("behind a pending file") {
    c.send_file(temp_file("12345"), 0, 5);
    CHECK_FALSE(c.output_full());
    c.send({"678", "90x"});
    CHECK(c.pending() == 11);
    CHECK(c.output_full());
  }
  c.feed("held");  // not read while the output is full
  CHECK(c.unread() == 4);
  CHECK(seen->data.empty());
  c.peer_reads(6);  // 5 pending: above the low-water mark still
  CHECK(c.output_full());
  CHECK(c.unread() == 4);
  c.peer_reads(1);  // 4: the crossing
  CHECK_FALSE(c.output_full());
  CHECK(c.unread() == 0);
  REQUIRE(seen->data.size() == 1);
  CHECK(seen->data[0] == "held");
}

// --- reading: pause, resume, backpressure ------------------------------------------------

TEST_CASE("resume_reading after pause_reading offers the buffered input again") {
  enum class Then { more_arrives, peer_silent, peer_ends, resumed_inside };
  Then then = Then::more_arrives;
  SUBCASE("then more input arrives") { then = Then::more_arrives; }
  SUBCASE("the peer stays silent") { then = Then::peer_silent; }
  SUBCASE("the peer's end waits for the resume too") { then = Then::peer_ends; }
  SUBCASE("paused and resumed inside the same on_data") { then = Then::resumed_inside; }

  auto seen = std::make_shared<Seen>();
  int calls = 0;
  Script s;
  s.on_data = [&](Connection& conn, Buffer& in) {
    if (++calls == 1) {  // the first time: pause, consuming nothing
      conn.pause_reading();
      if (then == Then::resumed_inside) conn.resume_reading();
      return;
    }
    consume_lines(conn, in);
  };
  MemoryConnection c(scripted(seen, s));
  c.feed("abc\n");
  REQUIRE(seen->data.size() >= 1);
  CHECK(seen->data[0] == "abc\n");
  if (then == Then::resumed_inside) {
    // The leftover was still in the loop's shared area when resume_reading() ran.
    REQUIRE(seen->data.size() == 2);
    CHECK(seen->data[1] == "abc\n");
    CHECK(seen->consumed == "abc\n");
    CHECK_FALSE(c.reading_paused());
    return;
  }
  CHECK(c.reading_paused());
  CHECK(c.unconsumed_input() == 4);
  if (then == Then::more_arrives) {
    c.feed("def\n");
    CHECK(c.unread() == 4);  // held "in the kernel"
  }
  if (then == Then::peer_ends) {
    c.feed("x");
    c.peer_shutdown();
    CHECK(c.state() == State::open);  // not read yet
    CHECK(seen->peer_shutdowns == 0);
  }
  CHECK(seen->data.size() == 1);
  c.resume_reading();
  CHECK_FALSE(c.reading_paused());
  REQUIRE(seen->data.size() >= 2);
  CHECK(seen->data[1] == "abc\n");  // offered again, though nothing new arrived with it
  CHECK(c.unread() == 0);
  switch (then) {
    case Then::more_arrives:
      CHECK(seen->consumed == "abc\ndef\n");
      CHECK(seen->data.size() == 3);
      break;
    case Then::peer_silent:
      CHECK(seen->consumed == "abc\n");
      CHECK(seen->data.size() == 2);
      break;
    case Then::peer_ends:
      CHECK(seen->consumed == "abc\n");
      CHECK(c.state() == State::read_closed);
      CHECK(seen->peer_shutdowns == 1);
      CHECK(seen->peer_shutdown_input == "x");
      break;
    case Then::resumed_inside: break;
  }
}

TEST_CASE("backpressure: reading stops at the high-water mark and resumes at the low one") {
  auto seen = std::make_shared<Seen>();
  MemoryOptions o;
  o.high_water = 10;
  o.low_water = 4;
  MemoryConnection c(scripted(seen), o);
  c.open();
  c.set_peer_reading(false);
  c.send("123456789");
  CHECK_FALSE(c.output_full());
  c.feed("a");  // read: the output is below the mark
  CHECK(c.unread() == 0);
  CHECK(seen->consumed == "a");
  c.send("0");
  CHECK(c.output_full());
  c.feed("bcd");
  CHECK(c.unread() == 3);  // held "in the kernel"
  CHECK(seen->consumed == "a");
  c.peer_reads(5);  // 5 pending
  CHECK(c.output_full());
  CHECK(c.unread() == 3);
  c.peer_reads(1);  // 4 pending: the low-water mark
  CHECK_FALSE(c.output_full());
  CHECK(c.unread() == 0);
  CHECK(seen->consumed == "abcd");
  CHECK(seen->drains == 0);
  c.peer_reads();
  CHECK(c.output() == "1234567890");
  CHECK(seen->drains == 1);
  CHECK(c.peak_output() == 10);
}

TEST_CASE("backpressure: a handler that stops at output_full() is offered its input again below the low-water mark") {
  auto seen = std::make_shared<Seen>();
  Script s;
  s.on_data = [](Connection& conn, Buffer& in) {
    for (;;) {
      if (conn.output_full()) return;  // leave the rest where it is
      size_t eol = in.view().find('\n');
      if (eol == std::string_view::npos) return;
      std::string answer(12, in.view()[0]);
      in.consume(eol + 1);
      conn.send(answer);
    }
  };
  MemoryOptions o;
  o.high_water = 10;
  o.low_water = 4;
  MemoryConnection c(scripted(seen, s), o);
  c.set_peer_reading(false);
  c.feed("a\nb\nc\n");
  CHECK(c.output_full());
  CHECK(c.pending() == 12);
  CHECK(c.unconsumed_input() == 4);
  c.peer_reads();
  CHECK(c.output() == std::string(12, 'a') + std::string(12, 'b') + std::string(12, 'c'));
  CHECK(c.unconsumed_input() == 0);
  CHECK(seen->data.size() == 2);  // once fresh, once offered again
  CHECK_FALSE(c.closed());
}
