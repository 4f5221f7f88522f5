// Unit tests for a datagram handler's life as netloop::testing::MemoryDatagramSocket runs
// it (lib/src/testing/memory_datagram_socket.cpp): on_open, on_datagram, on_drain after a
// full send buffer, on_close with its reason, the socket's timers, and send() refused for
// want of a peer. No sockets, no loop.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "echo/udp_echo.hpp"
#include "netloop/address.hpp"
#include "netloop/datagram.hpp"
#include "netloop/testing/memory_datagram_socket.hpp"

using namespace netloop;
using namespace std::chrono_literals;
using netloop::testing::MemoryDatagramSocket;

namespace {

// Writes down every call it gets, with what the socket said at that moment; replies
// "pong" to every datagram.
struct Recorder final : DatagramHandler {
  std::vector<std::string>* log;
  explicit Recorder(std::vector<std::string>* log) : log(log) {}

  void on_open(DatagramSocket& s) override {
    log->push_back(std::string("open") + (s.is_open() ? "" : " (not open?)"));
  }
  void on_datagram(DatagramSocket& s, std::span<const std::byte> data, const Address& from) override {
    log->push_back("datagram " + std::string(reinterpret_cast<const char*>(data.data()), data.size()));
    s.send_to(from, "pong");
  }
  void on_drain(DatagramSocket& s) override {
    log->push_back(std::string("drain") + (s.output_full() ? " (still full?)" : ""));
  }
  void on_close(DatagramSocket& s, const CloseInfo& info) override {
    log->push_back("close " + std::string(to_string(info.reason)) +
                   (info.error ? " " + info.error.message() : "") +
                   (s.is_open() ? " (still open?)" : ""));
  }
};

const Address kPeer = Address::ipv4_loopback(40001);

}  // namespace

TEST_CASE("memory datagram socket: on_open comes once, before the first datagram") {
  std::vector<std::string> log;
  MemoryDatagramSocket s(std::make_unique<Recorder>(&log));
  CHECK_FALSE(s.is_open());
  CHECK(log.empty());  // constructing calls nothing
  s.deliver("ping", kPeer);
  s.open();  // already open: nothing more
  s.deliver("again", kPeer);
  CHECK(s.is_open());
  CHECK(log == std::vector<std::string>{"open", "datagram ping", "datagram again"});
  REQUIRE(s.sent().size() == 2);
  CHECK(s.sent()[0].to == kPeer);
}

TEST_CASE("memory datagram socket: on_close comes once with its reason, and is the last call") {
  std::vector<std::string> log;
  MemoryDatagramSocket s(std::make_unique<Recorder>(&log));
  s.open();
  bool fired = false;
  s.start_timer(1s, Duration::zero(), [&] { fired = true; });
  s.close({CloseReason::error, std::make_error_code(std::errc::bad_file_descriptor)});
  s.close();  // once only
  s.deliver("late", kPeer);  // a closed socket receives nothing
  CHECK_FALSE(s.is_open());
  CHECK_FALSE(s.send_to(kPeer, "late reply"));  // refused at once, counted
  CHECK(s.refused() == 1);
  s.advance(2s);
  CHECK_FALSE(fired);  // its timers went with it
  REQUIRE(log.size() == 2);
  CHECK(log[0] == "open");
  CHECK(log[1] == "close error " + std::make_error_code(std::errc::bad_file_descriptor).message());
  CHECK(s.sent().empty());
}

TEST_CASE("memory datagram socket: close() by default says shutdown, as a server letting go") {
  std::vector<std::string> log;
  MemoryDatagramSocket s(std::make_unique<Recorder>(&log));
  s.deliver("ping", kPeer);
  s.close();
  CHECK(log.back() == "close shutdown");
}

TEST_CASE("memory datagram socket: a send dropped for a full buffer sets output_full; on_drain when room comes back") {
  std::vector<std::string> log;
  MemoryDatagramSocket s(std::make_unique<Recorder>(&log));
  s.open();

  SUBCASE("a drop, then room: one on_drain") {
    s.set_send_buffer_full(true);
    CHECK_FALSE(s.output_full());  // full, but nothing was dropped yet
    s.deliver("ping", kPeer);      // its pong is dropped
    CHECK(s.dropped() == 1);
    CHECK(s.output_full());
    s.deliver("ping2", kPeer);     // dropped too; still one on_drain owed
    s.set_send_buffer_full(false);
    CHECK_FALSE(s.output_full());
    s.set_send_buffer_full(false);  // nothing owed any more
    CHECK(log == std::vector<std::string>{"open", "datagram ping", "datagram ping2", "drain"});
    s.deliver("ping3", kPeer);
    REQUIRE(s.sent().size() == 1);  // sending works again
    CHECK(s.sent()[0].data == "pong");
  }
  SUBCASE("full and emptied without a drop: no on_drain") {
    s.set_send_buffer_full(true);
    s.set_send_buffer_full(false);
    CHECK(log == std::vector<std::string>{"open"});
  }
  SUBCASE("closed while a drain is owed: on_close, and no on_drain after it") {
    s.set_send_buffer_full(true);
    s.deliver("ping", kPeer);
    s.close();
    s.set_send_buffer_full(false);
    CHECK(log == std::vector<std::string>{"open", "datagram ping", "close shutdown"});
  }
}

TEST_CASE("memory datagram socket: it has no peer, so send() is refused and counted, as on a bound UdpSocket") {
  std::vector<std::string> log;
  MemoryDatagramSocket s(std::make_unique<Recorder>(&log));
  s.open();
  CHECK_FALSE(s.connected());
  CHECK(s.peer_address().family() == AF_UNSPEC);
  CHECK_FALSE(s.send("hello"));
  CHECK(s.refused() == 1);
  CHECK(s.sent().empty());
  CHECK(s.send_to(kPeer, "hello"));
  CHECK(s.refused() == 1);
}

TEST_CASE("memory datagram socket: cancel_timer says whether the timer was still pending") {
  std::vector<std::string> log;
  MemoryDatagramSocket s(std::make_unique<Recorder>(&log));
  int fired = 0;
  TimerId pending = s.start_timer(10s, Duration::zero(), [&] { ++fired; });
  TimerId soon = s.start_timer(1s, Duration::zero(), [&] { ++fired; });
  CHECK(s.cancel_timer(pending));
  CHECK_FALSE(s.cancel_timer(pending));  // already cancelled
  s.advance(2s);
  CHECK(fired == 1);
  CHECK_FALSE(s.cancel_timer(soon));  // already fired
  TimerId every = s.start_timer(1s, 1s, [&] { ++fired; });
  s.advance(3s);
  CHECK(fired == 4);
  CHECK(s.cancel_timer(every));  // a repeating timer stays pending until cancelled
  s.advance(3s);
  CHECK(fired == 4);
}

TEST_CASE("memory datagram socket: the UDP echo handler through its whole life") {
  MemoryDatagramSocket s(echo::make_udp_echo_handler());
  s.open();
  CHECK(s.sent().empty());  // on_open sends nothing
  s.set_send_buffer_full(true);
  s.deliver("lost", kPeer);
  CHECK(s.output_full());
  s.set_send_buffer_full(false);  // on_drain: nothing to resend (UDP kept nothing)
  CHECK(s.sent().empty());
  s.deliver("kept", kPeer);
  REQUIRE(s.sent().size() == 1);
  CHECK(s.sent()[0].data == "kept");
  s.close();
  CHECK(s.sent().size() == 1);  // on_close sends nothing
}
