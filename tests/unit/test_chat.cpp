// Unit tests for the chat-room example (demos/chat): several MemoryConnections sharing one
// room, each wrapping a handler from the same factory. No sockets, no loop.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat.hpp"
#include "netloop/log.hpp"
#include "netloop/testing/memory_connection.hpp"
#include "netloop/testing/memory_loop.hpp"

using namespace netloop;
using namespace netloop::demo::chat;
using netloop::testing::MemoryConnection;
using netloop::testing::MemoryOptions;

namespace {

// One room, and the connections in it (made by its factory, opened at once), all on one
// loop as they would be in the server: one clock, and a close one member's handler asks
// of another completes after that handler returns.
struct Room {
  netloop::testing::MemoryLoop loop;  // first: it outlives the connections
  std::shared_ptr<ChatRoom> room;
  StreamHandlerFactory factory;
  std::vector<std::unique_ptr<MemoryConnection>> conns;

  explicit Room(ChatOptions o = {}) : room(make_chat_room(o)), factory(chat_factory(room)) {}

  MemoryConnection& join(MemoryOptions mo = {}) {
    conns.push_back(std::make_unique<MemoryConnection>(loop, factory(), mo));
    conns.back()->open();
    return *conns.back();
  }
  size_t count() const { return member_count(*room); }
  // Forgets what every connection has received so far.
  void clear() {
    for (auto& c : conns) c->take_output();
  }
  // Destroys a connection object (as the library does after on_close).
  void destroy(MemoryConnection& c) {
    std::erase_if(conns, [&](const auto& p) { return p.get() == &c; });
  }
};

std::string line(std::string_view s) { return std::string(s) + "\n"; }

// Quiet during a test that makes the room log warnings on purpose.
struct QuietLog {
  LogLevel was = log_level();
  QuietLog() { set_log_level(LogLevel::off); }
  ~QuietLog() { set_log_level(was); }
};

}  // namespace

TEST_CASE("chat: greeting, join announcements, member_count") {
  Room r;
  CHECK(r.count() == 0);
  auto& a = r.join();
  CHECK(a.take_output() == "* welcome, you are guest-1\n");
  CHECK(r.count() == 1);
  auto& b = r.join();
  CHECK(b.take_output() == "* welcome, you are guest-2\n");
  CHECK(a.take_output() == "* guest-2 joined\n");
  auto& c = r.join();
  CHECK(c.take_output() == "* welcome, you are guest-3\n");
  CHECK(a.take_output() == "* guest-3 joined\n");
  CHECK(b.take_output() == "* guest-3 joined\n");
  CHECK(r.count() == 3);
  CHECK_FALSE(a.closed());
  CHECK(a.timers_pending() == 0);
}

TEST_CASE("chat: a line goes to every other member, not back to its sender") {
  Room r;
  auto& a = r.join();
  auto& b = r.join();
  auto& c = r.join();
  r.clear();
  a.feed("hello, room\n");
  CHECK(a.output().empty());
  CHECK(b.take_output() == "guest-1: hello, room\n");
  CHECK(c.take_output() == "guest-1: hello, room\n");
  CHECK(a.unconsumed_input() == 0);
  c.feed("hi a\n");
  CHECK(a.take_output() == "guest-3: hi a\n");
  CHECK(b.take_output() == "guest-3: hi a\n");
  CHECK(c.output().empty());
}

TEST_CASE("chat: lines split across feeds, several lines in one feed, CRLF") {
  Room r;
  auto& a = r.join();
  auto& b = r.join();
  r.clear();

  SUBCASE("one byte at a time") {
    a.feed_in_pieces("split line\n", 1);
    CHECK(b.take_output() == "guest-1: split line\n");
  }
  SUBCASE("a partial line waits for its end") {
    a.feed("hel");
    CHECK(b.output().empty());
    CHECK(a.unconsumed_input() == 3);
    a.feed("lo\nwor");
    CHECK(b.take_output() == "guest-1: hello\n");
    a.feed("ld\n");
    CHECK(b.take_output() == "guest-1: world\n");
    CHECK(a.unconsumed_input() == 0);
  }
  SUBCASE("several lines in one feed, in order") {
    a.feed("one\ntwo\nthree\n");
    CHECK(b.take_output() == "guest-1: one\nguest-1: two\nguest-1: three\n");
  }
  SUBCASE("CRLF: the CR is dropped, also when the LF comes in the next feed") {
    a.feed("crlf\r\n");
    CHECK(b.take_output() == "guest-1: crlf\n");
    a.feed("late\r");
    CHECK(b.output().empty());
    a.feed("\n");
    CHECK(b.take_output() == "guest-1: late\n");
    a.feed("/nick crlf\r\n");  // commands too
    CHECK(a.take_output() == "* you are now crlf\n");
  }
  SUBCASE("empty lines are ignored; control characters are neutralised") {
    a.feed("\n\r\n");
    CHECK(b.output().empty());
    a.feed("a\rb\x1b[2Jc\td\x7f\n");
    CHECK(b.take_output() == "guest-1: a?b?[2Jc\td?\n");
  }
  SUBCASE("a line starting with // says /; an unknown command is refused to its sender") {
    a.feed("//shrug\n");
    CHECK(b.take_output() == "guest-1: /shrug\n");
    a.feed("/dance\n");
    CHECK(a.take_output().starts_with("* unknown command;"));
    CHECK(b.output().empty());
  }
}

TEST_CASE("chat: /nick renames, validates names, and keeps them unique") {
  Room r;
  auto& a = r.join();
  auto& b = r.join();
  r.clear();

  a.feed("/nick alice\n");
  CHECK(a.take_output() == "* you are now alice\n");
  CHECK(b.take_output() == "* guest-1 is now alice\n");
  a.feed("hi\n");
  CHECK(b.take_output() == "alice: hi\n");

  const std::string invalid = "* invalid name: 1 to 32 characters of A-Z a-z 0-9 _ -\n";
  for (std::string_view bad : {"/nick two words", "/nick a.b", "/nick caf\xc3\xa9",
                               "/nick 123456789012345678901234567890123", "/nick a:b"}) {
    CAPTURE(bad);
    b.feed(line(bad));
    CHECK(b.take_output() == invalid);
    CHECK(a.output().empty());  // nobody else hears of it
  }
  b.feed("/nick\n");
  CHECK(b.take_output() == "* usage: /nick NAME\n");
  b.feed("/nick   \n");
  CHECK(b.take_output() == "* usage: /nick NAME\n");

  SUBCASE("taken, also in another case") {
    b.feed("/nick alice\n");
    CHECK(b.take_output() == "* name taken\n");
    b.feed("/nick ALICE\n");
    CHECK(b.take_output() == "* name taken\n");
    CHECK(a.output().empty());
    b.feed("hi\n");
    CHECK(a.take_output() == "guest-2: hi\n");  // still guest-2
  }
  SUBCASE("32 characters of every allowed kind") {
    b.feed("/nick Az09_-bcdefghijklmnopqrstuvwxyz\n");
    CHECK(b.take_output() == "* you are now Az09_-bcdefghijklmnopqrstuvwxyz\n");
    CHECK(a.take_output() == "* guest-2 is now Az09_-bcdefghijklmnopqrstuvwxyz\n");
  }
  SUBCASE("a name given up is free again; one's own name in another case is allowed") {
    a.feed("/nick Alice\n");
    CHECK(a.take_output() == "* you are now Alice\n");
    CHECK(b.take_output() == "* alice is now Alice\n");
    a.feed("/nick carol\n");
    r.clear();
    b.feed("/nick alice\n");
    CHECK(b.take_output() == "* you are now alice\n");
    CHECK(a.take_output() == "* guest-2 is now alice\n");
  }
  SUBCASE("guest names skip a name someone took") {
    a.feed("/nick guest-3\n");
    r.clear();
    auto& c = r.join();
    CHECK(c.take_output() == "* welcome, you are guest-4\n");
  }
}

TEST_CASE("chat: /who lists the members to the asker only") {
  Room r;
  auto& a = r.join();
  auto& b = r.join();
  auto& c = r.join();
  a.feed("/nick alice\n");
  r.clear();
  b.feed("/who\n");
  CHECK(b.take_output() == "* 3 here: alice, guest-2, guest-3\n");
  CHECK(a.output().empty());
  CHECK(c.output().empty());
  c.peer_shutdown();
  b.feed("/who\n");
  CHECK(b.take_output() == "* guest-3 left\n* 2 here: alice, guest-2\n");
}

TEST_CASE("chat: /quit says bye, closes, and the others are told") {
  Room r;
  auto& a = r.join();
  auto& b = r.join();
  a.feed("/nick alice\n");
  r.clear();
  a.feed("/quit\nnot sent\n");  // nothing after /quit is read
  CHECK(a.take_output() == "* bye\n");
  REQUIRE(a.closed());
  CHECK(a.close_info()->reason == CloseReason::local);
  CHECK(b.take_output() == "* alice left\n");
  CHECK(r.count() == 1);
  r.destroy(a);
  b.feed("still here\n");  // nothing to send it to; no dangling pointer (ASan)
  CHECK(b.output().empty());
  // The name is free again.
  auto& c = r.join();
  c.feed("/nick alice\n");
  CHECK(c.take_output() == "* welcome, you are guest-3\n* you are now alice\n");
}

TEST_CASE("chat: a member that goes away, whatever the reason, leaves the room") {
  Room r;
  auto& a = r.join();
  auto& b = r.join();
  auto& c = r.join();
  r.clear();
  CloseReason expected{};
  SUBCASE("the peer ends its stream") {
    b.peer_shutdown();
    expected = CloseReason::peer;
  }
  SUBCASE("the peer resets") {
    b.peer_reset();
    expected = CloseReason::reset;
  }
  SUBCASE("the connection is aborted") {
    b.abort();
    expected = CloseReason::aborted;
  }
  SUBCASE("closed by the server") {
    b.close();
    expected = CloseReason::local;
  }
  SUBCASE("too much unconsumed input (a limit of the transport)") {
    MemoryOptions mo;
    mo.max_input = 100;
    auto& d = r.join(mo);
    r.clear();
    // A line under max_line but over the transport's max_input: the connection fails.
    d.feed(std::string(150, 'x'));
    REQUIRE(d.closed());
    CHECK(d.close_info()->reason == CloseReason::error);
    CHECK(a.take_output() == "* guest-4 left\n");
    CHECK(c.take_output() == "* guest-4 left\n");
    r.destroy(d);
    b.abort();
    expected = CloseReason::aborted;
  }
  REQUIRE(b.closed());
  CHECK(b.close_info()->reason == expected);
  CHECK(a.take_output() == "* guest-2 left\n");
  CHECK(c.take_output() == "* guest-2 left\n");
  CHECK(r.count() == 2);
  r.destroy(b);  // the handler and its connection are gone: the room must not touch them
  a.feed("after\n");
  CHECK(c.take_output() == "guest-1: after\n");
  c.feed("/who\n");
  CHECK(c.take_output() == "* 2 here: guest-1, guest-3\n");
}

TEST_CASE("chat: a server shutting down closes members without announcing each") {
  Room r;
  auto& a = r.join();
  auto& b = r.join();
  r.clear();
  r.destroy(b);  // a MemoryConnection destroyed while open closes with reason shutdown
  CHECK(r.count() == 1);
  CHECK(a.output().empty());
  r.conns.clear();
  CHECK(r.count() == 0);
}

TEST_CASE("chat: a server draining says so to each member and closes it, silently") {
  Room r;
  auto& a = r.join();
  auto& b = r.join();
  auto& c = r.join();
  r.clear();
  b.server_drain();
  CHECK(b.take_output() == "* server shutting down\n");
  REQUIRE(b.closed());
  CHECK(b.close_info()->reason == CloseReason::local);
  CHECK(r.count() == 2);
  CHECK(a.output().empty());  // no "left": everyone is being told the same
  CHECK(c.output().empty());
  a.server_drain();
  c.server_drain();
  CHECK(r.count() == 0);
  CHECK(a.take_output() == "* server shutting down\n");
  CHECK(c.take_output() == "* server shutting down\n");
}

TEST_CASE("chat: a line longer than max_line gets an error and a close") {
  ChatOptions o;
  o.max_line = 10;
  Room r(o);
  auto& a = r.join();
  auto& b = r.join();
  r.clear();
  a.feed("0123456789\n");  // exactly max_line
  CHECK(b.take_output() == "guest-1: 0123456789\n");
  a.feed("0123456789\r\n");  // the CR does not count
  CHECK(b.take_output() == "guest-1: 0123456789\n");

  SUBCASE("the whole line at once") {
    a.feed("0123456789A\nnext\n");
  }
  SUBCASE("without its end yet: refused as soon as it cannot fit") {
    a.feed("0123456789\r");  // could still be a full line with CRLF
    CHECK_FALSE(a.closed());
    a.feed("A");
  }
  SUBCASE("in pieces") {
    a.feed_in_pieces(std::string(1000, 'x'), 7);
  }
  CHECK(a.take_output() == "* line too long\n");
  REQUIRE(a.closed());
  CHECK(a.close_info()->reason == CloseReason::local);
  CHECK(b.take_output() == "* guest-1 left\n");  // and nothing of the line itself
  CHECK(r.count() == 1);
}

TEST_CASE("chat: past max_members a newcomer is turned away") {
  ChatOptions o;
  o.max_members = 2;
  Room r(o);
  auto& a = r.join();
  auto& b = r.join();
  r.clear();
  auto& c = r.join();
  CHECK(c.take_output() == "* room is full\n");
  CHECK(c.closed());
  CHECK(r.count() == 2);
  CHECK(a.output().empty());  // neither a join nor a leave to announce
  CHECK(b.output().empty());
  b.feed("/quit\n");
  auto& d = r.join();  // room again
  CHECK(d.take_output() == "* welcome, you are guest-3\n");
  CHECK(r.count() == 2);
}

TEST_CASE("chat: a slow reader past max_backlog is disconnected; the others keep receiving") {
  QuietLog quiet;
  ChatOptions o;
  o.max_backlog = 1000;
  Room r(o);
  MemoryOptions mo;
  mo.high_water = 500;
  mo.low_water = 100;
  auto& talker = r.join(mo);
  auto& fast = r.join(mo);
  auto& slow = r.join(mo);
  r.clear();
  slow.set_peer_reading(false);

  const std::string msg(98, 'm');  // "guest-1: " + 98 + "\n" = 108 bytes per line
  const std::string expected_line = "guest-1: " + msg + "\n";
  int sent = 0;
  while (!slow.closed() && sent < 100) {
    talker.feed(msg + "\n");
    ++sent;
    if (!slow.closed()) CHECK(slow.pending() == size_t(sent) * expected_line.size());
  }
  REQUIRE(slow.closed());
  CHECK(slow.close_info()->reason == CloseReason::aborted);
  CHECK(sent == 10);  // 9 lines are 972 bytes, the 10th makes 1080 > 1000
  CHECK(slow.pending() == 0);  // abort drops the backlog
  CHECK(r.count() == 2);

  std::string fast_expected;
  for (int i = 0; i < sent; ++i) fast_expected += expected_line;
  fast_expected += "* guest-3 left\n";
  CHECK(fast.take_output() == fast_expected);
  CHECK(talker.take_output() == "* guest-3 left\n");

  r.destroy(slow);
  for (int i = 0; i < 50; ++i) talker.feed(msg + "\n");  // well past 1000 bytes in all
  CHECK(fast.take_output().size() == 50 * expected_line.size());
  CHECK_FALSE(fast.closed());
  CHECK_FALSE(talker.closed());
}

TEST_CASE("chat: a member behind by less than max_backlog is kept and catches up") {
  ChatOptions o;
  o.max_backlog = 1000;
  Room r(o);
  auto& talker = r.join();
  auto& lagging = r.join();
  r.clear();
  lagging.set_peer_reading(false);
  for (int i = 0; i < 9; ++i) talker.feed(std::string(98, 'm') + "\n");  // 972 bytes
  CHECK_FALSE(lagging.closed());
  lagging.set_peer_reading(true);
  CHECK(lagging.take_output().size() == 972);
  talker.feed(std::string(98, 'm') + "\n");  // the backlog is gone: no eviction
  CHECK_FALSE(lagging.closed());
}

TEST_CASE("chat: several slow readers evicted by one broadcast; each leave is announced once") {
  QuietLog quiet;
  ChatOptions o;
  o.max_backlog = 100;
  Room r(o);
  auto& talker = r.join();
  auto& fast = r.join();
  auto& slow1 = r.join();
  auto& slow2 = r.join();
  r.clear();
  slow1.set_peer_reading(false);
  slow2.set_peer_reading(false);
  talker.feed(std::string(200, 'x') + "\n");  // one line over the limit for both at once
  CHECK(slow1.closed());
  CHECK(slow2.closed());
  CHECK(r.count() == 2);
  CHECK(fast.take_output() ==
        "guest-1: " + std::string(200, 'x') + "\n* guest-3 left\n* guest-4 left\n");
  CHECK(talker.take_output() == "* guest-3 left\n* guest-4 left\n");
}

TEST_CASE("chat: a member's own replies respect its backpressure") {
  Room r;
  MemoryOptions mo;
  mo.high_water = 30;
  mo.low_water = 10;
  auto& a = r.join(mo);
  r.clear();
  a.set_peer_reading(false);
  a.feed("/who\n/who\n/who\n");  // "* 1 here: guest-1\n" is 18 bytes
  CHECK(a.pending() == 2 * 18);  // past the high-water mark after the second reply...
  CHECK(a.output_full());
  CHECK(a.unconsumed_input() == 5);  // ...so the third /who waits in the input
  a.set_peer_reading(true);          // read: below the low-water mark, input offered again
  CHECK(a.take_output() == "* 1 here: guest-1\n* 1 here: guest-1\n* 1 here: guest-1\n");
  CHECK(a.unconsumed_input() == 0);
}

TEST_CASE("chat: a member still closing is skipped by broadcasts and /who, then leaves") {
  Room r;
  auto& a = r.join();
  auto& b = r.join();
  auto& c = r.join();
  r.clear();
  b.set_peer_reading(false);
  b.feed("/quit\n");  // "* bye" is pending: the orderly close waits for it
  REQUIRE_FALSE(b.closed());
  CHECK_FALSE(b.is_open());
  CHECK(r.count() == 3);
  a.feed("while b closes\n");
  CHECK(c.take_output() == "guest-1: while b closes\n");
  CHECK(b.pending() == 6);  // "* bye\n" only: nothing more was sent to a closing connection
  a.feed("/who\n");
  CHECK(a.take_output() == "* 2 here: guest-1, guest-3\n");
  b.set_peer_reading(true);  // the bye is read; the close completes
  CHECK(b.take_output() == "* bye\n");
  REQUIRE(b.closed());
  CHECK(r.count() == 2);
  CHECK(a.take_output() == "* guest-2 left\n");
  CHECK(c.take_output() == "* guest-2 left\n");
}

TEST_CASE("chat: rooms are separate; the room outlives its factory and handlers") {
  Room r1, r2;
  auto& a = r1.join();
  auto& b = r2.join();
  CHECK(a.take_output() == "* welcome, you are guest-1\n");
  CHECK(b.take_output() == "* welcome, you are guest-1\n");
  a.feed("only r1\n");
  CHECK(b.output().empty());

  // The test's pointer and factory go first, as when the demo's main() returns; a
  // listener's copy of the factory and the handlers keep the room alive.
  std::weak_ptr<ChatRoom> weak = r1.room;
  StreamHandlerFactory listener_copy = r1.factory;
  r1.room.reset();
  r1.factory = nullptr;
  REQUIRE_FALSE(weak.expired());
  r1.conns.push_back(std::make_unique<MemoryConnection>(listener_copy()));
  r1.conns.back()->open();
  CHECK(a.take_output() == "* guest-2 joined\n");
  listener_copy = nullptr;
  CHECK_FALSE(weak.expired());
  r1.conns.clear();
  CHECK(weak.expired());
}

namespace {

// A transport that completes every close at once, even one caused by a send from another
// connection's handler. TcpConnection defers such a close to the end of the batch, but
// the Connection contract does not promise it; the room must cope either way.
class EagerConnection final : public Connection {
 public:
  explicit EagerConnection(std::unique_ptr<StreamHandler> h) : handler_(std::move(h)) {}
  ~EagerConnection() override { finish(CloseReason::shutdown); }
  void open() { handler_->on_open(*this); }
  void feed(std::string_view s) {
    input_.append(s);
    handler_->on_data(*this, input_);
  }
  std::string out;
  bool fail_next_send = false;  // the next send fails: closed (reset) inside that send

  void send(const void* d, size_t n) override {
    if (closed_) return;
    if (fail_next_send) return finish(CloseReason::reset);
    out.append(static_cast<const char*>(d), n);
  }
  void send(std::span<const std::string_view> pieces) override {
    for (auto p : pieces) send(p.data(), p.size());
  }
  using Connection::send;
  void send_file(Fd, uint64_t, uint64_t) override {}
  void send_file(std::string_view, Fd, uint64_t, uint64_t) override {}
  void shutdown_write() override {}
  void close() override { finish(CloseReason::local); }
  void close(std::error_code, std::string_view) override { finish(CloseReason::protocol); }
  void abort() override { finish(CloseReason::aborted); }
  void pause_reading() override {}
  void resume_reading() override {}
  bool is_open() const noexcept override { return !closed_; }
  size_t pending_output() const noexcept override { return 0; }
  bool output_full() const noexcept override { return false; }
  const Address& peer_address() const noexcept override { return address_; }
  const Address& local_address() const noexcept override { return address_; }
  TimerId start_timer(Duration, Duration, TimerCallback) override { return {}; }
  void set_idle_timeout(Duration) override {}
  size_t unconsumed_input() const noexcept override { return 0; }
  netloop::EventLoop& loop() const noexcept override { return memory_loop.loop(); }
  mutable netloop::testing::MemoryLoop memory_loop;
  bool cancel_timer(TimerId) override { return false; }
  bool restart_timer(TimerId, Duration) override { return false; }
  TimePoint now() const noexcept override { return {}; }

 private:
  void finish(CloseReason reason) {
    if (closed_) return;
    closed_ = true;
    handler_->on_close(*this, {reason, {}});
  }
  std::unique_ptr<StreamHandler> handler_;
  Buffer input_;
  Address address_ = Address::ipv4_loopback(40000);
  bool closed_ = false;
};

}  // namespace

TEST_CASE("chat: a member closing inside a broadcast to it (eager transport)") {
  auto room = make_chat_room();
  auto factory = chat_factory(room);
  auto a = std::make_unique<EagerConnection>(factory());
  auto x = std::make_unique<EagerConnection>(factory());
  auto c = std::make_unique<EagerConnection>(factory());
  a->open();
  x->open();
  c->open();
  a->out.clear();
  c->out.clear();
  x->fail_next_send = true;
  a->feed("hi\n");  // x's on_close runs (and x leaves) while the room iterates its members
  CHECK(member_count(*room) == 2);
  CHECK(a->out == "* guest-2 left\n");
  CHECK(c->out == "* guest-2 left\nguest-1: hi\n");
  x.reset();  // gone: the room must not touch it again
  c->out.clear();
  a->feed("again\n");
  CHECK(c->out == "guest-1: again\n");
  a->feed("/who\n");
  CHECK(a->out.ends_with("* 2 here: guest-1, guest-3\n"));
}
