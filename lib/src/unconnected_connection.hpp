// UnconnectedConnection: the Connection a failed connect's on_close is given (by the
// Connector, and by testing::fail_connect): nothing was connected, so every call does
// nothing; it only says where the last attempt went.
#pragma once

#include "netloop/event_loop.hpp"
#include "netloop/protocol.hpp"

namespace netloop {

class UnconnectedConnection final : public Connection {
 public:
  UnconnectedConnection(EventLoop& loop, const Address& peer) : loop_(loop), peer_(peer) {}
  EventLoop& loop() const noexcept override { return loop_; }
  void send(const void*, size_t) override {}
  void send(std::span<const std::string_view>) override {}
  void send_file(Fd, uint64_t, uint64_t) override {}
  void send_file(std::string_view, Fd, uint64_t, uint64_t) override {}
  void shutdown_write() override {}
  void close() override {}
  void close(std::error_code, std::string_view) override {}
  void abort() override {}
  void pause_reading() override {}
  void resume_reading() override {}
  bool is_open() const noexcept override { return false; }
  size_t pending_output() const noexcept override { return 0; }
  bool output_full() const noexcept override { return false; }
  size_t unconsumed_input() const noexcept override { return 0; }
  const Address& peer_address() const noexcept override { return peer_; }
  const Address& local_address() const noexcept override { return local_; }
  TimerId start_timer(Duration, Duration, TimerCallback) override { return {}; }
  bool cancel_timer(TimerId) override { return false; }
  bool restart_timer(TimerId, Duration) override { return false; }
  void set_idle_timeout(Duration) override {}
  TimePoint now() const noexcept override { return loop_.now(); }

 private:
  EventLoop& loop_;
  Address peer_;
  Address local_;
};

}  // namespace netloop
