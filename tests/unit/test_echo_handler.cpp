// Unit tests for the TCP echo handler (protocols/echo/tcp_echo.cpp), driven through a
// fake Connection that records what the handler does: no sockets, no loop.
#include <doctest/doctest.h>

#include <memory>
#include <random>
#include <string>
#include <string_view>

#include "echo/tcp_echo.hpp"
#include "netloop/buffer.hpp"
#include "netloop/protocol.hpp"

using namespace netloop;

namespace {

// Records sends and close calls; behaves like a connection whose kernel takes everything.
class FakeConnection final : public Connection {
 public:
  std::string sent;
  int send_calls = 0;
  int closes = 0;
  int aborts = 0;
  int write_shutdowns = 0;
  int pauses = 0;
  int resumes = 0;
  int timers_started = 0;

  void send(const void* data, size_t n) override {
    ++send_calls;
    if (!open_) return;  // ignored once closing, as the interface says
    sent.append(static_cast<const char*>(data), n);
  }
  using Connection::send;
  void shutdown_write() override { ++write_shutdowns; }
  void close() override {
    ++closes;
    open_ = false;
  }
  void abort() override {
    ++aborts;
    open_ = false;
  }
  void pause_reading() override { ++pauses; }
  void resume_reading() override { ++resumes; }
  bool is_open() const noexcept override { return open_; }
  size_t pending_output() const noexcept override { return 0; }
  const Address& peer_address() const noexcept override { return peer_; }
  const Address& local_address() const noexcept override { return local_; }
  TimerId start_timer(Duration, Duration, std::function<void()>) override {
    ++timers_started;
    return TimerId{1};
  }
  void cancel_timer(TimerId) override {}
  bool restart_timer(TimerId, Duration) override { return false; }
  TimePoint now() const noexcept override { return TimePoint{}; }

 private:
  bool open_ = true;
  Address peer_ = Address::ipv4_loopback(40000);
  Address local_ = Address::ipv4_loopback(7);
};

std::string binary_pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = char(rng() & 0xff);
  return s;
}

}  // namespace

TEST_CASE("echo handler: data is echoed exactly and the input fully consumed") {
  echo::TcpEchoHandler h;
  FakeConnection conn;
  Buffer input;
  h.on_open(conn);
  CHECK(conn.sent.empty());

  input.append("hello, echo\r\n");
  h.on_data(conn, input);
  CHECK(conn.sent == "hello, echo\r\n");
  CHECK(input.empty());

  // Binary bytes, NUL and 0xff included.
  const std::string bin("\0\x01\xff\xfe\r\n\0", 7);
  input.append(bin);
  h.on_data(conn, input);
  CHECK(conn.sent == "hello, echo\r\n" + bin);
  CHECK(input.empty());

  // Bytes an earlier call left in the buffer are part of what is echoed.
  input.append("left");
  input.append("over");
  h.on_data(conn, input);
  CHECK(conn.sent == "hello, echo\r\n" + bin + "leftover");
  CHECK(input.empty());

  // Input whose front was already consumed: only the readable bytes go back.
  input.append("XXXpayload");
  input.consume(3);
  h.on_data(conn, input);
  CHECK(conn.sent == "hello, echo\r\n" + bin + "leftoverpayload");
  CHECK(input.empty());

  // The handler never closes, aborts or pauses on its own.
  CHECK(conn.closes == 0);
  CHECK(conn.aborts == 0);
  CHECK(conn.write_shutdowns == 0);
  CHECK(conn.pauses == 0);
  CHECK(conn.is_open());
}

TEST_CASE("echo handler: arbitrary splits of the input echo the same bytes") {
  const std::string stream = binary_pattern(200'000, 7);
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    echo::TcpEchoHandler h;
    FakeConnection conn;
    Buffer input;
    size_t pos = 0;
    int calls = 0;
    while (pos < stream.size()) {
      // Split sizes from 1 byte up to 64 KiB, mostly small.
      size_t n = (rng() % 32 == 0) ? 1 + rng() % 65536 : 1 + rng() % 100;
      n = std::min(n, stream.size() - pos);
      input.append(stream.data() + pos, n);
      pos += n;
      h.on_data(conn, input);
      ++calls;
      REQUIRE(input.empty());
      REQUIRE(conn.sent.size() == pos);
    }
    CHECK(calls > 50);
    CHECK(conn.sent == stream);
  }
}

TEST_CASE("echo handler: a large single input (1 MiB) is echoed whole") {
  const std::string big = binary_pattern(size_t(1) << 20, 11);
  echo::TcpEchoHandler h;
  FakeConnection conn;
  Buffer input;
  input.append(big);
  h.on_data(conn, input);
  CHECK(input.empty());
  CHECK(conn.sent.size() == big.size());
  CHECK(conn.sent == big);
}

TEST_CASE("echo handler: empty input sends nothing") {
  echo::TcpEchoHandler h;
  FakeConnection conn;
  Buffer input;
  h.on_data(conn, input);
  CHECK(conn.sent.empty());
  CHECK(input.empty());
}

TEST_CASE("echo handler: the default on_peer_shutdown closes the connection (orderly)") {
  echo::TcpEchoHandler h;
  FakeConnection conn;
  Buffer input;
  input.append("last words");
  h.on_data(conn, input);
  h.on_peer_shutdown(conn);
  CHECK(conn.closes == 1);
  CHECK(conn.aborts == 0);  // orderly: what was echoed still goes out
  CHECK_FALSE(conn.is_open());
  CHECK(conn.sent == "last words");
}

TEST_CASE("echo handler: on_drain and on_close do nothing to the connection") {
  echo::TcpEchoHandler h;
  FakeConnection conn;
  h.on_drain(conn);
  h.on_close(conn, CloseInfo{CloseReason::peer, {}});
  CHECK(conn.sent.empty());
  CHECK(conn.send_calls == 0);
  CHECK(conn.closes == 0);
  CHECK(conn.aborts == 0);
  CHECK(conn.timers_started == 0);
}

TEST_CASE("echo handler: the factory makes a fresh echo handler per connection") {
  auto factory = echo::tcp_echo_factory();
  REQUIRE(factory);
  auto a = factory();
  auto b = factory();
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(a.get() != b.get());
  CHECK(dynamic_cast<echo::TcpEchoHandler*>(a.get()) != nullptr);

  // Each handler echoes for its own connection only.
  FakeConnection ca, cb;
  Buffer ia, ib;
  ia.append("to a");
  ib.append("to b");
  a->on_data(ca, ia);
  b->on_data(cb, ib);
  CHECK(ca.sent == "to a");
  CHECK(cb.sent == "to b");
}
