// netloop::testing::MemoryDatagramSocket: drives any DatagramHandler without sockets or a
// loop: deliver datagrams from any sender, read what the handler sent and to whom, fill
// the "send buffer", advance a fake clock.
//
//   MemoryDatagramSocket s(std::make_unique<MyHandler>());
//   s.deliver("ping", Address::ipv4_loopback(5000));
//   REQUIRE(s.sent().size() == 1);
//   CHECK(s.sent()[0].data == "pong");
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/datagram.hpp"
#include "netloop/testing/fake_clock.hpp"

namespace netloop::testing {

class MemoryDatagramSocket final : public DatagramSocket {
 public:
  explicit MemoryDatagramSocket(std::unique_ptr<DatagramHandler> handler,
                                Address local = Address::ipv4_loopback(7007));

  // One datagram from `from`: on_datagram.
  void deliver(std::string_view datagram, const Address& from);
  // While full, send_to accepts datagrams but drops them (counted), as UdpSocket does when
  // the kernel's send buffer is full.
  void set_send_buffer_full(bool full) noexcept { send_full_ = full; }
  void advance(Duration d) { clock_.advance(d); }  // the fake clock; due timers fire in order

  struct Sent {
    Address to;
    std::string data;
  };
  const std::vector<Sent>& sent() const noexcept { return sent_; }
  std::vector<Sent> take_sent();
  size_t dropped() const noexcept { return dropped_; }    // while the buffer was "full"
  size_t refused() const noexcept { return refused_; }    // larger than a UDP datagram
  DatagramHandler& handler() noexcept { return *handler_; }

  bool send_to(const Address& to, const void* data, size_t n) override;
  using DatagramSocket::send_to;
  const Address& local_address() const noexcept override { return local_; }
  TimerId start_timer(Duration delay, Duration repeat, std::function<void()> fn) override;
  void cancel_timer(TimerId id) override { clock_.timers().cancel(id); }
  TimePoint now() const noexcept override { return clock_.now(); }

 private:
  std::unique_ptr<DatagramHandler> handler_;
  Address local_;
  std::vector<Sent> sent_;
  size_t dropped_ = 0;
  size_t refused_ = 0;
  bool send_full_ = false;
  FakeClock clock_;
};

}  // namespace netloop::testing
