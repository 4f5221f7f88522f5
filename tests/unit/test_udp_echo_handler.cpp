// Unit tests for the UDP echo handler (protocols/echo/udp_echo.cpp), driven through a
// fake DatagramSocket that records every send_to: no sockets, no loop.
#include <doctest/doctest.h>

#include <cstddef>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "echo/udp_echo.hpp"
#include "netloop/address.hpp"
#include "netloop/datagram.hpp"

using namespace netloop;

namespace {

// Records each send_to (a copy of the bytes and where they go). `accept` is what send_to
// returns: false plays a socket whose send buffer is full.
class FakeDatagramSocket final : public DatagramSocket {
 public:
  struct Sent {
    Address to;
    std::string data;
  };
  std::vector<Sent> sent;
  bool accept = true;
  int timers_started = 0;
  int timers_cancelled = 0;

  bool send_to(const Address& to, const void* data, size_t n) override {
    // The handler must pass valid memory even for an empty datagram when n > 0.
    REQUIRE((n == 0 || data != nullptr));
    sent.push_back({to, std::string(static_cast<const char*>(data), n)});
    return accept;
  }
  using DatagramSocket::send_to;
  const Address& local_address() const noexcept override { return local_; }
  TimerId start_timer(Duration, Duration, std::function<void()>) override {
    ++timers_started;
    return TimerId{1};
  }
  void cancel_timer(TimerId) override { ++timers_cancelled; }
  TimePoint now() const noexcept override { return TimePoint{}; }

 private:
  Address local_ = Address::ipv4_loopback(7);
};

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string binary_pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = char(rng() & 0xff);
  return s;
}

Address v4(const char* text) {
  auto a = Address::parse(text);
  REQUIRE(a.ok());
  return *a;
}

}  // namespace

TEST_CASE("udp echo handler: the datagram goes back whole to its sender") {
  echo::UdpEchoHandler h;
  FakeDatagramSocket sock;
  const Address from = v4("127.0.0.1:40001");
  const std::string msg = "hello, udp echo";
  h.on_datagram(sock, as_bytes(msg), from);
  REQUIRE(sock.sent.size() == 1);
  CHECK(sock.sent[0].to == from);
  CHECK(sock.sent[0].to.to_string() == "127.0.0.1:40001");
  CHECK(sock.sent[0].data == msg);
  // A datagram handler needs no timers for echo.
  CHECK(sock.timers_started == 0);
  CHECK(sock.timers_cancelled == 0);
}

TEST_CASE("udp echo handler: binary data with NULs is echoed byte for byte") {
  echo::UdpEchoHandler h;
  FakeDatagramSocket sock;
  const Address from = v4("10.1.2.3:5353");
  const std::string bin("\0\x01\xff\xfe\r\n\0\0", 8);
  h.on_datagram(sock, as_bytes(bin), from);
  const std::string all_bytes = [] {
    std::string s;
    for (int i = 0; i < 256; ++i) s.push_back(char(i));
    return s;
  }();
  h.on_datagram(sock, as_bytes(all_bytes), from);
  REQUIRE(sock.sent.size() == 2);
  CHECK(sock.sent[0].data.size() == 8);
  CHECK(sock.sent[0].data == bin);
  CHECK(sock.sent[1].data == all_bytes);
  CHECK(sock.sent[0].to == from);
  CHECK(sock.sent[1].to == from);
}

TEST_CASE("udp echo handler: an empty datagram is answered with an empty datagram") {
  echo::UdpEchoHandler h;
  FakeDatagramSocket sock;
  const Address from = v4("127.0.0.1:40002");
  h.on_datagram(sock, std::span<const std::byte>{}, from);
  REQUIRE(sock.sent.size() == 1);  // RFC 862: every datagram gets an answering datagram
  CHECK(sock.sent[0].data.empty());
  CHECK(sock.sent[0].to == from);
}

TEST_CASE("udp echo handler: 1, 1400 and 65507 bytes are echoed whole, once each") {
  echo::UdpEchoHandler h;
  FakeDatagramSocket sock;
  const Address from = Address::ipv6_loopback(40003);
  size_t k = 0;
  for (size_t size : {size_t(1), size_t(1400), size_t(65507)}) {
    CAPTURE(size);
    const std::string data = binary_pattern(size, uint32_t(size));
    h.on_datagram(sock, as_bytes(data), from);
    REQUIRE(sock.sent.size() == ++k);
    CHECK(sock.sent.back().data.size() == size);
    CHECK(sock.sent.back().data == data);
    CHECK(sock.sent.back().to == from);
    CHECK(sock.sent.back().to.is_ipv6());
  }
}

TEST_CASE("udp echo handler: many senders each get their own datagrams back") {
  echo::UdpEchoHandler h;
  FakeDatagramSocket sock;
  std::vector<Address> senders;
  for (int i = 0; i < 50; ++i) {
    auto a = Address::parse("127.0.0." + std::to_string(1 + i % 5) + ":" + std::to_string(20000 + i));
    REQUIRE(a.ok());
    senders.push_back(*a);
  }
  for (int i = 0; i < 20; ++i) senders.push_back(Address::ipv6_loopback(uint16_t(30000 + i)));
  // The same port on two families, and the same host on two ports: all distinct peers.
  senders.push_back(Address::ipv4_loopback(30000));
  senders.push_back(Address::ipv4_loopback(20000));

  // Interleaved: round r sends datagram r of every sender.
  std::vector<std::string> expected;
  std::vector<size_t> expected_sender;
  for (int round = 0; round < 3; ++round) {
    for (size_t s = 0; s < senders.size(); ++s) {
      std::string payload = "from " + senders[s].to_string() + " #" + std::to_string(round);
      payload.push_back('\0');
      payload += binary_pattern(1 + (s * 7 + size_t(round)) % 300, uint32_t(s * 10 + size_t(round)));
      h.on_datagram(sock, as_bytes(payload), senders[s]);
      expected.push_back(payload);
      expected_sender.push_back(s);
    }
  }
  REQUIRE(sock.sent.size() == expected.size());
  size_t wrong_to = 0, wrong_data = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (!(sock.sent[i].to == senders[expected_sender[i]])) ++wrong_to;
    if (sock.sent[i].data != expected[i]) ++wrong_data;
  }
  CHECK(wrong_to == 0);
  CHECK(wrong_data == 0);
}

TEST_CASE("udp echo handler: the reply is a copy made during the call") {
  // `data` is valid only during on_datagram: what the socket got must not depend on the
  // caller's memory afterwards (the fake copies; the handler must pass the bytes it got,
  // not some other storage).
  echo::UdpEchoHandler h;
  FakeDatagramSocket sock;
  std::string area = "first datagram";
  h.on_datagram(sock, as_bytes(area), Address::ipv4_loopback(1));
  area.assign(area.size(), 'X');  // the receive area is reused for the next datagram
  h.on_datagram(sock, as_bytes(area), Address::ipv4_loopback(2));
  REQUIRE(sock.sent.size() == 2);
  CHECK(sock.sent[0].data == "first datagram");
  CHECK(sock.sent[1].data == std::string(14, 'X'));
}

TEST_CASE("udp echo handler: a dropped reply is not retried and the handler goes on") {
  echo::UdpEchoHandler h;
  FakeDatagramSocket sock;
  sock.accept = false;  // send buffer full: every reply is dropped
  const Address from = v4("127.0.0.1:40004");
  h.on_datagram(sock, as_bytes(std::string("one")), from);
  CHECK(sock.sent.size() == 1);  // tried once, never retried or buffered
  sock.accept = true;
  h.on_datagram(sock, as_bytes(std::string("two")), from);
  REQUIRE(sock.sent.size() == 2);
  CHECK(sock.sent[1].data == "two");
  CHECK(sock.timers_started == 0);  // no retry timer either
}

TEST_CASE("udp echo handler: make_udp_echo_handler makes a fresh echo handler each time") {
  auto a = echo::make_udp_echo_handler();
  auto b = echo::make_udp_echo_handler();
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(a.get() != b.get());
  CHECK(dynamic_cast<echo::UdpEchoHandler*>(a.get()) != nullptr);
  FakeDatagramSocket sa, sb;
  a->on_datagram(sa, as_bytes(std::string("to a")), Address::ipv4_loopback(1111));
  b->on_datagram(sb, as_bytes(std::string("to b")), Address::ipv4_loopback(2222));
  REQUIRE(sa.sent.size() == 1);
  REQUIRE(sb.sent.size() == 1);
  CHECK(sa.sent[0].data == "to a");
  CHECK(sa.sent[0].to.port() == 1111);
  CHECK(sb.sent[0].data == "to b");
  CHECK(sb.sent[0].to.port() == 2222);
}
