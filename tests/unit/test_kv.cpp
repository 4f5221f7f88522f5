// Unit tests of the key-value example (demos/kv) through its handler, driven by
// netloop::testing::MemoryConnection: every command's reply bytes, errors, expiry on a
// fake clock, pipelining (one feed, byte by byte, one send per batch), backpressure,
// QUIT, protocol errors, commands larger than the connection's input limit.
#include <doctest/doctest.h>

#include <initializer_list>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "kv/kv.hpp"
#include "kv/kv_handler.hpp"
#include "kv/kv_store.hpp"
#include "netloop/testing/memory_connection.hpp"
#include "netloop/testing/memory_loop.hpp"
#include "resp_command.hpp"

using namespace netloop;
using namespace netloop::demo::kv;
using namespace std::string_literals;
using netloop::testing::MemoryConnection;
using netloop::testing::MemoryOptions;

using kv_test::resp_command;

namespace {

std::string bulk(std::string_view v) {
  std::string s = "$";
  s += std::to_string(v.size());
  s += "\r\n";
  s += v;
  s += "\r\n";
  return s;
}
std::string integer(long n) {
  std::string s = ":";
  s += std::to_string(n);
  s += "\r\n";
  return s;
}
const std::string kOk = "+OK\r\n";
const std::string kNull = "$-1\r\n";

struct Kv {
  std::shared_ptr<KvStore> store;
  explicit Kv(KvOptions o = {}) : store(make_kv_store(o)) {}
  std::unique_ptr<MemoryConnection> connect(MemoryOptions mo = {}) const {
    auto c = std::make_unique<MemoryConnection>(kv_factory(store)(), mo);
    c->open();
    return c;
  }
};

// Sends one request on `c` and returns what came back.
std::string ask(MemoryConnection& c, std::string_view request) {
  c.feed(request);
  return c.take_output();
}

// Compares long outputs: on a mismatch, reports the sizes and the first difference
// rather than megabytes of both.
bool same(std::string_view got, std::string_view want) {
  if (got == want) return true;
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto around = [i](std::string_view s) { return std::string(s.substr(i < 20 ? 0 : i - 20, 60)); };
  MESSAGE("got " << got.size() << " bytes, want " << want.size() << "; first difference at " << i
                 << ": got ..." << around(got) << "... want ..." << around(want) << "...");
  return false;
}

// A Connection that records every send: to count sends per on_data call.
struct RecordingConnection final : Connection {
  std::vector<std::string> sends;
  bool open = true;
  Address addr = Address::ipv4_loopback(1);
  void send(const void* d, size_t n) override { sends.emplace_back(static_cast<const char*>(d), n); }
  void send(std::span<const std::string_view> pieces) override {
    std::string joined;
    for (auto p : pieces) joined += p;
    sends.push_back(std::move(joined));
  }
  using Connection::send;
  void send_file(Fd, uint64_t, uint64_t) override { FAIL("send_file"); }
  void send_file(std::string_view, Fd, uint64_t, uint64_t) override { FAIL("send_file"); }
  void shutdown_write() override {}
  void close() override { open = false; }
  void close(std::error_code, std::string_view) override { open = false; }
  void abort() override { open = false; }
  void pause_reading() override {}
  void resume_reading() override {}
  bool is_open() const noexcept override { return open; }
  size_t pending_output() const noexcept override { return 0; }
  bool output_full() const noexcept override { return false; }
  const Address& peer_address() const noexcept override { return addr; }
  const Address& local_address() const noexcept override { return addr; }
  TimerId start_timer(Duration, Duration, TimerCallback) override { return {}; }
  void set_idle_timeout(Duration) override {}
  size_t unconsumed_input() const noexcept override { return 0; }
  netloop::EventLoop& loop() const noexcept override { return memory_loop.loop(); }
  mutable netloop::testing::MemoryLoop memory_loop;
  bool cancel_timer(TimerId) override { return false; }
  bool restart_timer(TimerId, Duration) override { return false; }
  TimePoint now() const noexcept override { return TimePoint{}; }
};

}  // namespace

TEST_CASE("PING, ECHO, COMMAND, CONFIG GET, unknown commands") {
  Kv kv;
  auto c = kv.connect();
  CHECK(ask(*c, resp_command({"PING"})) == "+PONG\r\n");
  CHECK(ask(*c, resp_command({"ping"})) == "+PONG\r\n");
  CHECK(ask(*c, resp_command({"PING", "hi there"})) == bulk("hi there"));
  CHECK(ask(*c, resp_command({"PING", "a", "b"})) == "-ERR wrong number of arguments for 'ping' command\r\n");
  CHECK(ask(*c, resp_command({"ECHO", "x\r\ny"})) == bulk("x\r\ny"));
  CHECK(ask(*c, resp_command({"echo"})) == "-ERR wrong number of arguments for 'echo' command\r\n");
  CHECK(ask(*c, resp_command({"COMMAND"})) == "*0\r\n");
  CHECK(ask(*c, resp_command({"COMMAND", "DOCS"})) == "*0\r\n");
  CHECK(ask(*c, resp_command({"CONFIG", "GET", "save"})) == "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
  CHECK(ask(*c, resp_command({"config", "get", "APPENDONLY"})) == "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
  CHECK(ask(*c, resp_command({"CONFIG", "GET", "save", "appendonly", "save"})) ==
        "*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
  CHECK(ask(*c, resp_command({"CONFIG", "GET", "*"})) ==
        "*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
  CHECK(ask(*c, resp_command({"CONFIG", "GET", "maxmemory"})) == "*0\r\n");
  CHECK(ask(*c, resp_command({"CONFIG", "GET"})) == "-ERR wrong number of arguments for 'config|get' command\r\n");
  CHECK(ask(*c, resp_command({"CONFIG"})) == "-ERR wrong number of arguments for 'config' command\r\n");
  CHECK(ask(*c, resp_command({"CONFIG", "SET", "save", ""})) == "-ERR unknown subcommand 'SET'. Try CONFIG HELP.\r\n");
  CHECK(ask(*c, resp_command({"FOO"})) == "-ERR unknown command 'FOO', with args beginning with: \r\n");
  CHECK(ask(*c, resp_command({"foo", "a", "b c"})) ==
        "-ERR unknown command 'foo', with args beginning with: 'a' 'b c' \r\n");
  // Client bytes in an error stay on one line; long names and arguments are cut.
  CHECK(ask(*c, resp_command({"x\r\ny", "a\nb"})) == "-ERR unknown command 'x  y', with args beginning with: 'a b' \r\n");
  std::string reply = ask(*c, resp_command({std::string(300, 'n'), std::string(300, 'a'), "b"}));
  CHECK(reply == "-ERR unknown command '" + std::string(128, 'n') + "', with args beginning with: '" +
                     std::string(128, 'a') + "' \r\n");
  // Near-misses of real names are unknown too.
  CHECK(ask(*c, resp_command({"GETT", "k"})).starts_with("-ERR unknown command 'GETT'"));
  CHECK(ask(*c, resp_command({"SE", "k"})).starts_with("-ERR unknown command 'SE'"));
  CHECK(ask(*c, resp_command({"COMMANX"})).starts_with("-ERR unknown command 'COMMANX'"));
  CHECK(ask(*c, resp_command({"FLUSHALX"})).starts_with("-ERR unknown command 'FLUSHALX'"));
  CHECK_FALSE(c->closed());
}

TEST_CASE("SET, GET, DEL, EXISTS, DBSIZE, FLUSHALL") {
  Kv kv;
  auto c = kv.connect();
  CHECK(ask(*c, resp_command({"GET", "k"})) == kNull);
  CHECK(ask(*c, resp_command({"SET", "k", "v1"})) == kOk);
  CHECK(ask(*c, resp_command({"GET", "k"})) == bulk("v1"));
  CHECK(ask(*c, resp_command({"set", "k", "a longer value than before"})) == kOk);
  CHECK(ask(*c, resp_command({"gEt", "k"})) == bulk("a longer value than before"));
  CHECK(ask(*c, resp_command({"SET", "k", "v3"})) == kOk);  // shorter again: storage reused
  CHECK(ask(*c, resp_command({"GET", "k"})) == bulk("v3"));
  const std::string binary = "\0\r\n\xff$3\r\n*1\r\n"s;
  CHECK(ask(*c, resp_command({"SET", binary, binary + binary})) == kOk);
  CHECK(ask(*c, resp_command({"GET", binary})) == bulk(binary + binary));
  CHECK(ask(*c, resp_command({"SET", "", ""})) == kOk);  // empty key and value are fine
  CHECK(ask(*c, resp_command({"GET", ""})) == bulk(""));
  CHECK(ask(*c, resp_command({"DBSIZE"})) == integer(3));
  CHECK(key_count(*kv.store) == 3);
  CHECK(ask(*c, resp_command({"EXISTS", "k"})) == integer(1));
  CHECK(ask(*c, resp_command({"EXISTS", "k", "k", "nope", ""})) == integer(3));  // named twice: counted twice
  CHECK(ask(*c, resp_command({"DEL", "k", "nope", "k"})) == integer(1));
  CHECK(ask(*c, resp_command({"GET", "k"})) == kNull);
  CHECK(ask(*c, resp_command({"EXISTS", "k"})) == integer(0));
  CHECK(ask(*c, resp_command({"DBSIZE"})) == integer(2));
  CHECK(ask(*c, resp_command({"FLUSHALL"})) == kOk);
  CHECK(ask(*c, resp_command({"DBSIZE"})) == integer(0));
  CHECK(key_count(*kv.store) == 0);
  CHECK(ask(*c, resp_command({"SET", "a", "1"})) == kOk);
  CHECK(ask(*c, resp_command({"FLUSHALL", "async"})) == kOk);
  CHECK(ask(*c, resp_command({"FLUSHALL", "SYNC"})) == kOk);
  CHECK(ask(*c, resp_command({"DBSIZE"})) == integer(0));

  // Arity and syntax, with Redis's texts.
  CHECK(ask(*c, resp_command({"GET"})) == "-ERR wrong number of arguments for 'get' command\r\n");
  CHECK(ask(*c, resp_command({"GET", "a", "b"})) == "-ERR wrong number of arguments for 'get' command\r\n");
  CHECK(ask(*c, resp_command({"SET", "k"})) == "-ERR wrong number of arguments for 'set' command\r\n");
  CHECK(ask(*c, resp_command({"DEL"})) == "-ERR wrong number of arguments for 'del' command\r\n");
  CHECK(ask(*c, resp_command({"EXISTS"})) == "-ERR wrong number of arguments for 'exists' command\r\n");
  CHECK(ask(*c, resp_command({"DBSIZE", "x"})) == "-ERR wrong number of arguments for 'dbsize' command\r\n");
  CHECK(ask(*c, resp_command({"FLUSHALL", "now"})) == "-ERR syntax error\r\n");
  CHECK(ask(*c, resp_command({"FLUSHALL", "sync", "async"})) == "-ERR syntax error\r\n");
  CHECK_FALSE(c->closed());
}

TEST_CASE("the store is shared by the connections of a loop") {
  Kv kv;
  auto a = kv.connect();
  auto b = kv.connect();
  CHECK(ask(*a, resp_command({"SET", "k", "from a"})) == kOk);
  CHECK(ask(*b, resp_command({"GET", "k"})) == bulk("from a"));
  CHECK(ask(*b, resp_command({"DEL", "k"})) == integer(1));
  CHECK(ask(*a, resp_command({"EXISTS", "k"})) == integer(0));
  CHECK(kv.store->reply_buffer().empty());  // left empty between batches
}

TEST_CASE("SET options: NX, XX, GET, KEEPTTL, EX, PX; expiry on the fake clock") {
  Kv kv;
  auto c = kv.connect();
  SUBCASE("NX and XX") {
    CHECK(ask(*c, resp_command({"SET", "k", "1", "XX"})) == kNull);
    CHECK(ask(*c, resp_command({"EXISTS", "k"})) == integer(0));
    CHECK(ask(*c, resp_command({"SET", "k", "1", "NX"})) == kOk);
    CHECK(ask(*c, resp_command({"SET", "k", "2", "nx"})) == kNull);
    CHECK(ask(*c, resp_command({"GET", "k"})) == bulk("1"));
    CHECK(ask(*c, resp_command({"SET", "k", "3", "xx"})) == kOk);
    CHECK(ask(*c, resp_command({"GET", "k"})) == bulk("3"));
    CHECK(ask(*c, resp_command({"SET", "k", "4", "NX", "XX"})) == "-ERR syntax error\r\n");
    CHECK(ask(*c, resp_command({"GET", "k"})) == bulk("3"));
  }
  SUBCASE("GET: the old value") {
    CHECK(ask(*c, resp_command({"SET", "k", "1", "GET"})) == kNull);
    CHECK(ask(*c, resp_command({"SET", "k", "2", "GET"})) == bulk("1"));
    CHECK(ask(*c, resp_command({"SET", "k", "3", "NX", "GET"})) == bulk("2"));  // not set
    CHECK(ask(*c, resp_command({"GET", "k"})) == bulk("2"));
    CHECK(ask(*c, resp_command({"SET", "new", "x", "XX", "GET"})) == kNull);
    CHECK(ask(*c, resp_command({"EXISTS", "new"})) == integer(0));
  }
  SUBCASE("EX and PX expire; a read after the deadline reclaims the key") {
    CHECK(ask(*c, resp_command({"SET", "s", "v", "EX", "10"})) == kOk);
    CHECK(ask(*c, resp_command({"SET", "m", "v", "px", "1500"})) == kOk);
    CHECK(ask(*c, resp_command({"SET", "p", "v"})) == kOk);
    CHECK(kv.store->volatile_count() == 2);
    c->advance(milliseconds(1499));
    CHECK(ask(*c, resp_command({"GET", "m"})) == bulk("v"));
    c->advance(milliseconds(1));
    CHECK(ask(*c, resp_command({"GET", "m"})) == kNull);
    CHECK(ask(*c, resp_command({"EXISTS", "s", "m", "p"})) == integer(2));
    c->advance(seconds(9));
    CHECK(ask(*c, resp_command({"GET", "s"})) == kNull);
    CHECK(ask(*c, resp_command({"DEL", "s"})) == integer(0));
    CHECK(ask(*c, resp_command({"DBSIZE"})) == integer(1));
    CHECK(kv.store->volatile_count() == 0);
  }
  SUBCASE("a plain SET clears the time to live, KEEPTTL keeps it, a new EX replaces it") {
    CHECK(ask(*c, resp_command({"SET", "a", "v", "EX", "1"})) == kOk);
    CHECK(ask(*c, resp_command({"SET", "a", "w"})) == kOk);
    CHECK(ask(*c, resp_command({"SET", "b", "v", "EX", "1"})) == kOk);
    CHECK(ask(*c, resp_command({"SET", "b", "w", "KEEPTTL"})) == kOk);
    CHECK(ask(*c, resp_command({"SET", "c", "v", "EX", "1"})) == kOk);
    CHECK(ask(*c, resp_command({"SET", "c", "w", "EX", "100"})) == kOk);
    c->advance(seconds(2));
    CHECK(ask(*c, resp_command({"GET", "a"})) == bulk("w"));
    CHECK(ask(*c, resp_command({"GET", "b"})) == kNull);
    CHECK(ask(*c, resp_command({"GET", "c"})) == bulk("w"));
    CHECK(ask(*c, resp_command({"SET", "d", "v", "KEEPTTL"})) == kOk);  // no TTL to keep: none
    c->advance(seconds(1000));
    CHECK(ask(*c, resp_command({"GET", "d"})) == bulk("v"));
  }
  SUBCASE("keys nobody reads again are reclaimed by the sweep") {
    std::string batch;
    for (int i = 0; i < 100; ++i) batch += resp_command({"SET", std::to_string(i), "v", "PX", "10"});
    c->feed(batch);
    c->take_output();
    CHECK(key_count(*kv.store) == 100);
    c->advance(milliseconds(10));
    for (int i = 0; i < 30; ++i) c->feed(resp_command({"PING"}));  // each command reclaims a few
    CHECK(key_count(*kv.store) == 0);
    CHECK(kv.store->deadline_heap_size() == 0);
  }
  SUBCASE("expired keys the sweep has not reached yet count as missing everywhere") {
    // More keys than one command's sweep reclaims, all expired, none read since.
    std::string batch;
    for (int i = 0; i < 10; ++i) batch += resp_command({"SET", std::to_string(i), "v", "PX", "5"});
    c->feed(batch);
    c->take_output();
    c->advance(milliseconds(5));
    CHECK(ask(*c, resp_command({"DEL", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"})) == integer(0));
    c->feed(batch);
    c->take_output();
    c->advance(milliseconds(5));
    CHECK(ask(*c, resp_command({"EXISTS", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"})) == integer(0));
    c->feed(batch);
    c->take_output();
    c->advance(milliseconds(5));
    CHECK(ask(*c, resp_command({"SET", "9", "new", "NX"})) == kOk);  // NX: an expired key is no key
    CHECK(ask(*c, resp_command({"SET", "8", "new", "XX"})) == kNull);
    CHECK(ask(*c, resp_command({"GET", "9"})) == bulk("new"));
  }
  SUBCASE("DBSIZE does not count expired keys") {
    CHECK(ask(*c, resp_command({"SET", "a", "v", "PX", "5"})) == kOk);
    CHECK(ask(*c, resp_command({"SET", "b", "v"})) == kOk);
    c->advance(milliseconds(5));
    CHECK(key_count(*kv.store) == 2);  // not reclaimed yet
    CHECK(ask(*c, resp_command({"DBSIZE"})) == integer(1));
    CHECK(key_count(*kv.store) == 1);
  }
  SUBCASE("stale deadlines (keys rewritten with a new TTL) do not pile up") {
    for (int i = 0; i < 5000; ++i) c->feed(resp_command({"SET", "k", "v", "EX", "1000"}));
    CHECK(kv.store->volatile_count() == 1);
    CHECK(kv.store->deadline_heap_size() <= 2 * 1 + 1024 + 1);
  }
  SUBCASE("bad options") {
    const std::string syntax = "-ERR syntax error\r\n";
    const std::string not_int = "-ERR value is not an integer or out of range\r\n";
    const std::string bad_time = "-ERR invalid expire time in 'set' command\r\n";
    CHECK(ask(*c, resp_command({"SET", "k", "v", "EX"})) == syntax);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "EX", "1", "PX", "1"})) == syntax);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "EX", "1", "KEEPTTL"})) == syntax);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "KEEPTTL", "PX", "1"})) == syntax);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "FOREVER"})) == syntax);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "EX", "ten"})) == not_int);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "EX", "1.5"})) == not_int);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "EX", "0"})) == bad_time);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "PX", "-5"})) == bad_time);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "EX", "9223372036854775807"})) == bad_time);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "PX", "9223372036854775807"})) == bad_time);
    CHECK(ask(*c, resp_command({"SET", "k", "v", "EXAT", "2000000000"})) ==
          "-ERR SET option 'EXAT' is not supported by this server (use EX or PX)\r\n");
    CHECK(ask(*c, resp_command({"SET", "k", "v", "pxat", "1"})) ==
          "-ERR SET option 'pxat' is not supported by this server (use EX or PX)\r\n");
    CHECK(ask(*c, resp_command({"EXISTS", "k"})) == integer(0));  // none of them set anything
  }
}

TEST_CASE("inline commands, as telnet sends them") {
  Kv kv;
  auto c = kv.connect();
  CHECK(ask(*c, "PING\r\n") == "+PONG\r\n");
  CHECK(ask(*c, "set greeting \"hello world\"\n") == kOk);
  CHECK(ask(*c, "GET greeting\r\n") == bulk("hello world"));
  CHECK(ask(*c, "\r\n\r\n") == "");  // blank lines: nothing
  CHECK(ask(*c, "*0\r\n") == "");    // empty arrays: nothing
  CHECK(ask(*c, "DEL greeting\r\n") == integer(1));
  CHECK_FALSE(c->closed());
}

TEST_CASE("100 pipelined commands: answered in order, in one feed, byte by byte, or in random pieces") {
  // Mixed commands (arrays and inline) over a few keys; the replies follow from a model.
  std::string batch, reference;
  std::map<std::string, std::string> model;
  for (int i = 0; i < 100; ++i) {
    std::string k = std::to_string(i % 7);
    k.insert(0, "key:");
    std::string v = std::to_string(i);
    v += " value\r\n\0"s;
    auto it = model.find(k);
    switch (i % 5) {
      case 0: batch += resp_command({"SET", k, v}); reference += kOk; model[k] = v; break;
      case 1: batch += resp_command({"GET", k}); reference += it == model.end() ? kNull : bulk(it->second); break;
      case 2: batch += "PING\r\n"; reference += "+PONG\r\n"; break;
      case 3: batch += resp_command({"ECHO", v}); reference += bulk(v); break;
      case 4: batch += resp_command({"EXISTS", k, "none"}); reference += integer(it != model.end()); break;
    }
  }
  SUBCASE("one feed") {
    Kv kv;
    auto c = kv.connect();
    c->feed(batch);
    CHECK(same(c->take_output(), reference));
    CHECK(c->unconsumed_input() == 0);
  }
  SUBCASE("byte by byte") {
    Kv kv;
    auto c = kv.connect();
    c->feed_in_pieces(batch, 1);
    CHECK(same(c->take_output(), reference));
    CHECK(c->unconsumed_input() == 0);
  }
  SUBCASE("random pieces") {
    std::mt19937 rng(7);
    for (int round = 0; round < 20; ++round) {
      Kv kv;
      auto c = kv.connect();
      for (size_t pos = 0; pos < batch.size();) {
        size_t n = 1 + rng() % 200;
        c->feed(std::string_view(batch).substr(pos, n));
        pos += n;
      }
      CHECK(same(c->take_output(), reference));
    }
  }
}

TEST_CASE("a pipelined batch is answered with one send") {
  Kv kv;
  RecordingConnection conn;
  auto handler = kv_factory(kv.store)();
  handler->on_open(conn);
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += i % 2 ? resp_command({"SET", "k", "v"}) : resp_command({"GET", "k"});
  batch += "*2\r\n$3\r\nGET\r\n$1";  // and the start of the next command
  Buffer input;
  input.append(batch);
  handler->on_data(conn, input);
  REQUIRE(conn.sends.size() == 1);
  CHECK(conn.sends[0].starts_with(kNull + kOk + bulk("v") + kOk));
  CHECK(input.view() == "*2\r\n$3\r\nGET\r\n$1");  // the partial command stays in the input
  input.append("\r\nk\r\n");
  handler->on_data(conn, input);
  REQUIRE(conn.sends.size() == 2);
  CHECK(conn.sends[1] == bulk("v"));
  CHECK(input.empty());
  CHECK(conn.open);
  // Replies past the flush threshold go out in more than one send, in order.
  std::string big(10000, 'b');
  input.append(resp_command({"SET", "big", big}));
  handler->on_data(conn, input);
  conn.sends.clear();
  std::string gets;
  for (int i = 0; i < 20; ++i) gets += resp_command({"GET", "big"});
  input.append(gets);
  handler->on_data(conn, input);
  CHECK(conn.sends.size() > 1);
  CHECK(conn.sends.size() <= 4);
  std::string all;
  for (auto& s : conn.sends) all += s;
  std::string want;
  for (int i = 0; i < 20; ++i) want += bulk(big);
  CHECK(same(all, want));
}

TEST_CASE("a peer that pipelines without reading: commands wait in the input, output stays bounded") {
  Kv kv;
  MemoryOptions mo;
  mo.high_water = 8 * 1024;
  mo.low_water = 2 * 1024;
  auto c = kv.connect(mo);
  const std::string value(1000, 'v');
  CHECK(ask(*c, resp_command({"SET", "k", value})) == kOk);
  c->set_peer_reading(false);
  std::string batch;
  const int n = 300;  // 300 replies of ~1 KiB: far more than the high-water mark
  for (int i = 0; i < n; ++i) batch += resp_command({"GET", "k"});
  c->feed(batch);
  // The first batch may overshoot the mark by at most one flush of the reply buffer.
  CHECK(c->pending() <= mo.high_water + KvHandler::kFlushBytes + 2 * 1024);
  CHECK(c->unconsumed_input() > 0);  // the rest waits, unparsed
  CHECK_FALSE(c->closed());
  size_t waiting = c->unconsumed_input();
  c->feed(resp_command({"PING"}));  // arrives while paused: queued behind the rest
  CHECK(c->unconsumed_input() >= waiting);
  // The peer reads a little at a time: each time the backlog drops below the low-water
  // mark, more commands are answered; in the end all of them, in order.
  for (int guard = 0; guard < 10000 && (c->pending() > 0 || c->unconsumed_input() > 0); ++guard) {
    c->peer_reads(1500);
    CHECK(c->pending() <= mo.high_water + KvHandler::kFlushBytes + 2 * 1024);
  }
  std::string want;
  for (int i = 0; i < n; ++i) want += bulk(value);
  want += "+PONG\r\n";
  CHECK(same(c->output(), want));
  CHECK(c->unconsumed_input() == 0);
  CHECK_FALSE(c->closed());
}

TEST_CASE("end of stream: commands waiting behind a full output are still answered, then closed") {
  Kv kv;
  MemoryOptions mo;
  mo.high_water = 4 * 1024;
  mo.low_water = 1024;
  auto c = kv.connect(mo);
  c->feed(resp_command({"SET", "k", std::string(2000, 'x')}));
  c->set_peer_reading(false);
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += resp_command({"GET", "k"});
  c->feed(batch);
  REQUIRE(c->unconsumed_input() > 0);
  c->peer_shutdown();
  CHECK_FALSE(c->closed());
  c->set_peer_reading(true);
  CHECK(c->closed());
  CHECK(c->close_info()->reason == CloseReason::peer);
  size_t replies = 0;
  for (size_t pos = 0; (pos = c->output().find("$2000\r\n", pos)) != std::string::npos; ++pos) ++replies;
  CHECK(replies == 100);
}

TEST_CASE("end of stream with nothing pending closes at once") {
  Kv kv;
  auto c = kv.connect();
  c->feed(resp_command({"PING"}) + "*2\r\n$3\r\nGET");  // a partial command at the end: dropped
  c->peer_shutdown();
  CHECK(c->closed());
  CHECK(c->output() == "+PONG\r\n");
}

TEST_CASE("QUIT: +OK, then the connection closes; nothing after it runs") {
  Kv kv;
  auto c = kv.connect();
  c->feed(resp_command({"PING"}) + resp_command({"QUIT"}) + resp_command({"SET", "after", "quit"}) + "PING\r\n");
  CHECK(c->output() == "+PONG\r\n+OK\r\n");
  REQUIRE(c->closed());
  CHECK(c->close_info()->reason == CloseReason::local);
  CHECK(key_count(*kv.store) == 0);
  auto d = kv.connect();
  CHECK(ask(*d, "quit\r\n") == kOk);
  CHECK(d->closed());
}

TEST_CASE("a protocol error is answered, then the connection closes (like Redis)") {
  struct Row {
    std::string raw;
    std::string reply;
  };
  const Row rows[] = {
      {"*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"PING\r\n*1\r\n+PING\r\n", "+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n"},
      {"*a\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"*1\r\n$4\r\nPINGPONG\r\n", "-ERR Protocol error: expected CRLF after a bulk string\r\n"},
      {"SET k \"v\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.raw);
    Kv kv;
    auto c = kv.connect();
    c->feed(row.raw + resp_command({"SET", "after", "error"}));
    CHECK(c->output() == row.reply);
    REQUIRE(c->closed());
    CHECK(c->close_info()->reason == CloseReason::local);
    CHECK(key_count(*kv.store) == 0);
  }
  // An inline line that never ends: refused once past max_inline.
  KvOptions o;
  o.max_inline = 100;
  Kv kv(o);
  auto c = kv.connect();
  c->feed(std::string(60, 'a'));
  CHECK_FALSE(c->closed());
  c->feed(std::string(60, 'a'));
  CHECK(c->output() == "-ERR Protocol error: too big inline request\r\n");
  CHECK(c->closed());
}

TEST_CASE("a command larger than the connection's input limit still arrives (spilled)") {
  Kv kv;
  MemoryOptions mo;
  mo.max_input = 64 * 1024;  // the connection fails past this much unconsumed input
  auto c = kv.connect(mo);
  std::mt19937 rng(3);
  std::string value(3 * 1024 * 1024 + 17, '\0');
  for (auto& ch : value) ch = char(rng());
  std::string stream = resp_command({"SET", "big", value}) + resp_command({"GET", "big"}) + resp_command({"STRLEN", "big"}) +
                       resp_command({"PING"});
  c->feed_in_pieces(stream, 10000);
  REQUIRE_FALSE(c->closed());
  std::string out = c->take_output();
  std::string want = kOk + bulk(value) +
                     "-ERR unknown command 'STRLEN', with args beginning with: 'big' \r\n" + "+PONG\r\n";
  CHECK(same(out, want));
  CHECK(c->unconsumed_input() == 0);
  // And byte-exact when the big command ends in the middle of a piece holding the next.
  auto d = kv.connect(mo);
  d->feed_in_pieces(resp_command({"ECHO", value}) + resp_command({"ECHO", "tail"}), 7777);
  CHECK(same(d->take_output(), bulk(value) + bulk("tail")));
}

TEST_CASE("a command past max_command is a protocol error, even while spilled") {
  KvOptions o;
  o.max_command = 100 * 1024;
  Kv kv(o);
  MemoryOptions mo;
  mo.max_input = 64 * 1024;
  auto c = kv.connect(mo);
  c->feed_in_pieces(resp_command({"SET", "k", std::string(60 * 1024, 'a'), "x", std::string(60 * 1024, 'b')}), 4096);
  CHECK(c->output() == "-ERR Protocol error: request too large\r\n");
  CHECK(c->closed());
  CHECK(c->close_info()->reason == CloseReason::local);
}
