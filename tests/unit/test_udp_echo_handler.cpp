// Unit tests for the UDP echo handler (protocols/echo/udp_echo.cpp), driven through
// netloop::testing::MemoryDatagramSocket: no sockets, no loop.
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
#include "netloop/testing/memory_datagram_socket.hpp"

using namespace netloop;
using netloop::testing::MemoryDatagramSocket;

namespace {

std::string binary_pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = char(rng() & 0xff);
  return s;
}

Address v4(const char* text) {
  auto a = Address::parse_numeric(text);
  REQUIRE(a.ok());
  return *a;
}

}  // namespace

TEST_CASE("udp echo handler: the datagram goes back whole to its sender") {
  MemoryDatagramSocket sock(std::make_unique<echo::UdpEchoHandler>());
  const Address from = v4("127.0.0.1:40001");
  const std::string msg = "hello, udp echo";
  sock.deliver(msg, from);
  REQUIRE(sock.sent().size() == 1);
  CHECK(sock.sent()[0].to == from);
  CHECK(sock.sent()[0].to.to_string() == "127.0.0.1:40001");
  CHECK(sock.sent()[0].data == msg);
}

TEST_CASE("udp echo handler: binary data with NULs is echoed byte for byte") {
  MemoryDatagramSocket sock(std::make_unique<echo::UdpEchoHandler>());
  const Address from = v4("10.1.2.3:5353");
  const std::string bin("\0\x01\xff\xfe\r\n\0\0", 8);
  sock.deliver(bin, from);
  const std::string all_bytes = [] {
    std::string s;
    for (int i = 0; i < 256; ++i) s.push_back(char(i));
    return s;
  }();
  sock.deliver(all_bytes, from);
  REQUIRE(sock.sent().size() == 2);
  CHECK(sock.sent()[0].data.size() == 8);
  CHECK(sock.sent()[0].data == bin);
  CHECK(sock.sent()[1].data == all_bytes);
  CHECK(sock.sent()[0].to == from);
  CHECK(sock.sent()[1].to == from);
}

TEST_CASE("udp echo handler: an empty datagram is answered with an empty datagram") {
  MemoryDatagramSocket sock(std::make_unique<echo::UdpEchoHandler>());
  const Address from = v4("127.0.0.1:40002");
  sock.deliver({}, from);
  REQUIRE(sock.sent().size() == 1);  // RFC 862: every datagram gets an answering datagram
  CHECK(sock.sent()[0].data.empty());
  CHECK(sock.sent()[0].to == from);
}

TEST_CASE("udp echo handler: 1, 1400 and 65507 bytes are echoed whole, once each") {
  MemoryDatagramSocket sock(std::make_unique<echo::UdpEchoHandler>());
  const Address from = Address::ipv6_loopback(40003);
  size_t k = 0;
  for (size_t size : {size_t(1), size_t(1400), size_t(65507)}) {
    CAPTURE(size);
    const std::string data = binary_pattern(size, uint32_t(size));
    sock.deliver(data, from);
    REQUIRE(sock.sent().size() == ++k);
    CHECK(sock.sent().back().data.size() == size);
    CHECK(sock.sent().back().data == data);
    CHECK(sock.sent().back().to == from);
    CHECK(sock.sent().back().to.is_ipv6());
  }
}

TEST_CASE("udp echo handler: many senders each get their own datagrams back") {
  MemoryDatagramSocket sock(std::make_unique<echo::UdpEchoHandler>());
  std::vector<Address> senders;
  for (int i = 0; i < 50; ++i) {
    auto a = Address::parse_numeric("127.0.0." + std::to_string(1 + i % 5) + ":" + std::to_string(20000 + i));
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
      sock.deliver(payload, senders[s]);
      expected.push_back(payload);
      expected_sender.push_back(s);
    }
  }
  REQUIRE(sock.sent().size() == expected.size());
  size_t wrong_to = 0, wrong_data = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (!(sock.sent()[i].to == senders[expected_sender[i]])) ++wrong_to;
    if (sock.sent()[i].data != expected[i]) ++wrong_data;
  }
  CHECK(wrong_to == 0);
  CHECK(wrong_data == 0);
}

TEST_CASE("udp echo handler: the reply is a copy made during the call") {
  // `data` is valid only during on_datagram: what the socket got must not depend on the
  // caller's memory afterwards (the memory socket copies; the handler must pass the bytes
  // it got, not some other storage).
  MemoryDatagramSocket sock(std::make_unique<echo::UdpEchoHandler>());
  std::string area = "first datagram";
  sock.deliver(area, Address::ipv4_loopback(1));
  area.assign(area.size(), 'X');  // the receive area is reused for the next datagram
  sock.deliver(area, Address::ipv4_loopback(2));
  REQUIRE(sock.sent().size() == 2);
  CHECK(sock.sent()[0].data == "first datagram");
  CHECK(sock.sent()[1].data == std::string(14, 'X'));
}

TEST_CASE("udp echo handler: a dropped reply is not retried and the handler goes on") {
  MemoryDatagramSocket sock(std::make_unique<echo::UdpEchoHandler>());
  sock.set_send_buffer_full(true);  // every reply is dropped
  const Address from = v4("127.0.0.1:40004");
  sock.deliver("one", from);
  CHECK(sock.dropped() == 1);  // tried once, never retried or buffered
  CHECK(sock.sent().empty());
  sock.set_send_buffer_full(false);
  sock.advance(seconds(10));   // no retry timer either
  CHECK(sock.sent().empty());
  sock.deliver("two", from);
  REQUIRE(sock.sent().size() == 1);
  CHECK(sock.sent()[0].data == "two");
}

TEST_CASE("udp echo handler: make_udp_echo_handler makes a fresh echo handler each time") {
  auto a = echo::make_udp_echo_handler();
  auto b = echo::make_udp_echo_handler();
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(a.get() != b.get());
  CHECK(dynamic_cast<echo::UdpEchoHandler*>(a.get()) != nullptr);
  MemoryDatagramSocket sa(std::move(a)), sb(std::move(b));
  sa.deliver("to a", Address::ipv4_loopback(1111));
  sb.deliver("to b", Address::ipv4_loopback(2222));
  REQUIRE(sa.sent().size() == 1);
  REQUIRE(sb.sent().size() == 1);
  CHECK(sa.sent()[0].data == "to a");
  CHECK(sa.sent()[0].to.port() == 1111);
  CHECK(sb.sent()[0].data == "to b");
  CHECK(sb.sent()[0].to.port() == 2222);
}
