// UdpSocket: a bound UDP socket driving one datagram handler, with batched receive and
// send (recvmmsg/sendmmsg on Linux, recvfrom/sendto elsewhere). The handler hears on_open
// when bind() succeeds and on_close when the socket is destroyed or can serve no more.
#pragma once

#include <memory>
#include <vector>

#include "netloop/buffer.hpp"
#include "netloop/counter.hpp"
#include "netloop/datagram.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/io_watcher.hpp"
#include "netloop/fd.hpp"
#include "netloop/timer_set.hpp"

namespace netloop {

struct UdpOptions {
  size_t batch = 32;             // datagrams per recvmmsg/sendmmsg call
  size_t max_datagram = 65535;   // receive room per datagram; larger ones are dropped, counted
  size_t batches_per_wakeup = 4; // receive calls per readiness event (fairness to other sockets)
  int recv_buffer = 0;           // SO_RCVBUF in bytes; 0 keeps the kernel's default
  int send_buffer = 0;           // SO_SNDBUF in bytes; 0 keeps the kernel's default
  bool reuse_port = false;       // SO_REUSEPORT: one socket per loop on the same port
  // Receive and send by completion when the loop's backend can (io_uring: a multishot
  // receive into buffers lent to the kernel, replies sent with the loop's next wait): one
  // system call per loop iteration instead of a wait, a receive and a send.
  bool completion = true;
  size_t completion_buffers = 128;  // receive buffers lent to the kernel (a power of two)
};

struct UdpStats {
  Counter datagrams_in;
  Counter datagrams_out;
  Counter bytes_in;
  Counter bytes_out;
  Counter dropped_truncated;  // larger than max_datagram: never delivered cut short
  Counter dropped_send_full;  // reply dropped: send buffer full (EAGAIN/ENOBUFS)
  Counter dropped_too_large;  // reply larger than a datagram can be (EMSGSIZE)
  Counter dropped_send_error; // reply dropped: any other send error (EINVAL, EACCES...)
  Counter peer_errors;        // ICMP errors surfacing as ECONNREFUSED & co.: ignored
  Counter receive_calls;      // recvmmsg/recvfrom calls that returned data (by completion:
                              // batches of received datagrams handed to the handler)
  Counter send_calls;         // sendmmsg/sendto calls (by completion: batches of replies)

  // Adds `o` field by field: for totals kept by a reader (never the socket's own stats).
  UdpStats& operator+=(const UdpStats& o) noexcept {
    datagrams_in += o.datagrams_in;
    datagrams_out += o.datagrams_out;
    bytes_in += o.bytes_in;
    bytes_out += o.bytes_out;
    dropped_truncated += o.dropped_truncated;
    dropped_send_full += o.dropped_send_full;
    dropped_too_large += o.dropped_too_large;
    dropped_send_error += o.dropped_send_error;
    peer_errors += o.peer_errors;
    receive_calls += o.receive_calls;
    send_calls += o.send_calls;
    return *this;
  }
};

class UdpSocket final : public DatagramSocket {
 public:
  static Result<std::unique_ptr<UdpSocket>> bind(EventLoop& loop, const Address& address,
                                                 std::unique_ptr<DatagramHandler> handler,
                                                 const UdpOptions& options = {});
  ~UdpSocket() override;  // on_close(shutdown), if still serving

  bool send_to(const Address& to, const void* data, size_t n) override;
  using DatagramSocket::send_to;
  bool output_full() const noexcept override { return output_full_; }
  bool is_open() const noexcept override { return open_; }
  const Address& local_address() const noexcept override { return local_; }
  TimerId start_timer(Duration delay, Duration repeat, std::function<void()> fn) override;
  bool cancel_timer(TimerId id) override;
  TimePoint now() const noexcept override { return loop_.now(); }

  const UdpStats& stats() const noexcept { return stats_; }
  // By completion, replies go to the kernel with the loop's next wait, and their results
  // are counted after it: this sends what is queued now and counts it, for a caller about
  // to read stats() for good. (Nothing to do by readiness: sends are done as they go.)
  void settle();
  // True while datagrams come and go by completion (UdpOptions::completion on a backend
  // with datagram channels), false when served by readiness.
  bool uses_completion() const noexcept { return channel_ != nullptr; }

 private:
  UdpSocket(EventLoop& loop, Fd fd, const Address& local, std::unique_ptr<DatagramHandler> handler,
            const UdpOptions& options);
  void on_ready(uint32_t ready);
  void on_readable();
  void on_channel_work();
  void stop_serving(const CloseInfo& info);  // stops both ways, then on_close
  void wait_for_room();  // a send was dropped for a full buffer: on_drain when writable
  void on_room();
  Result<void> serve_by_readiness();
  void drop_channel();  // settles the channel, closes it and stops the watcher
  size_t receive_batch(size_t n);  // receives up to n; returns how many (0: none for now)
  void flush();
  void send_now(const Address& to, const void* data, size_t n);  // one sendto, counted
  void count_send_error(int err, size_t dropped);

  struct Pending {
    Address to;
    size_t offset;
    size_t length;
  };

  EventLoop& loop_;
  Fd fd_;
  IoWatcher watcher_;
  // By completion the socket is not registered with the poller; while a dropped send waits
  // for room, this watcher asks it for write space alone.
  IoWatcher room_watcher_;
  Address local_;
  std::unique_ptr<DatagramHandler> handler_;
  UdpOptions options_;
  struct Batch;    // the platform's message headers and the receive area
  struct Channel;  // the loop's datagram channel, and what the socket makes of its reports
  std::unique_ptr<Batch> batch_;      // readiness only
  std::unique_ptr<Channel> channel_;  // completion only
  Buffer tx_;                   // copies of queued replies, emptied by every flush
  std::vector<Pending> pending_;
  TimerSet timers_;
  bool open_ = false;         // from on_open until on_close
  bool output_full_ = false;  // a send was dropped for a full buffer: on_drain is owed
  bool in_batch_ = false;
  bool single_receive_ = false;  // the batch being handled is one datagram: replies go at once
  // Light-load mode: one datagram per wake-up, with a full-batch probe every few.
  static constexpr unsigned kLightBatchesForSingle = 8;
  static constexpr unsigned kProbeEvery = 16;
  bool single_mode_ = false;
  unsigned light_batches_ = 0;
  unsigned wakeups_since_probe_ = 0;
  UdpStats stats_;
};

}  // namespace netloop
