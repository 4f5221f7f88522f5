// netloop::testing::MemoryDatagramSocket: drives any DatagramHandler without sockets or a
// loop: open and close it, deliver datagrams from any sender, read what the handler sent
// and to whom, fill and empty the "send buffer", advance a fake clock.
//
//   MemoryDatagramSocket s(std::make_unique<MyHandler>());
//   s.deliver("ping", Address::ipv4_loopback(5000));   // on_open first, then on_datagram
//   REQUIRE(s.sent().size() == 1);
//   CHECK(s.sent()[0].data == "pong");
//   s.close();                                         // on_close(shutdown)
#pragma once

#include <cstdint>
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

  // --- Driving the handler ------------------------------------------------------------
  void open();  // on_open (deliver() opens first if needed); once
  // One datagram from `from`: on_datagram. Ignored once closed, as a closed socket
  // receives nothing.
  void deliver(std::string_view datagram, const Address& from);
  // The socket stops serving: on_close(info), once; its timers are cancelled. By default
  // as when a Server lets its sockets go. (Destroying it calls nothing.)
  void close(const CloseInfo& info = {CloseReason::shutdown, {}});
  // While full, send_to accepts datagrams but drops them (counted), as UdpSocket does when
  // the kernel's send buffer is full, and output_full() turns true. Emptying it again
  // calls on_drain if a datagram was dropped meanwhile (UdpSocket: the kernel says the
  // socket is writable again).
  void set_send_buffer_full(bool full);
  void advance(Duration d) { clock_.advance(d); }  // the fake clock; due timers fire in order

  // --- What the handler did -----------------------------------------------------------
  struct Sent {
    Address to;
    std::string data;
  };
  const std::vector<Sent>& sent() const noexcept { return sent_; }
  std::vector<Sent> take_sent();
  size_t dropped() const noexcept { return dropped_; }    // while the buffer was "full"
  size_t refused() const noexcept { return refused_; }    // too large, sent after close, send()
  DatagramHandler& handler() noexcept { return *handler_; }

  // --- DatagramSocket -----------------------------------------------------------------
  bool send_to(const Address& to, const void* data, size_t n) override;
  using DatagramSocket::send_to;
  // Never connected (as a socket from UdpSocket::bind): send() is refused (counted in
  // refused()) and peer_address() is unset.
  bool send(const void*, size_t) override {
    ++refused_;
    return false;
  }
  using DatagramSocket::send;
  const Address& peer_address() const noexcept override { return no_peer_; }
  bool output_full() const noexcept override { return output_full_; }
  bool is_open() const noexcept override { return state_ == State::open; }
  const Address& local_address() const noexcept override { return local_; }
  TimerId start_timer(Duration delay, Duration repeat, std::function<void()> fn) override;
  bool cancel_timer(TimerId id) override { return clock_.timers().cancel(id); }
  TimePoint now() const noexcept override { return clock_.now(); }

 private:
  enum class State : uint8_t { unopened, open, closed };

  std::unique_ptr<DatagramHandler> handler_;
  Address local_;
  Address no_peer_;
  State state_ = State::unopened;
  std::vector<Sent> sent_;
  std::vector<TimerId> timers_;  // started by the handler: cancelled by close()
  size_t dropped_ = 0;
  size_t refused_ = 0;
  bool send_full_ = false;
  bool output_full_ = false;  // a datagram was dropped while full: on_drain is owed
  FakeClock clock_;
};

}  // namespace netloop::testing
