// UdpSocket: a UDP socket driving one datagram handler, with batched receive and send
// (recvmmsg/sendmmsg on Linux, recvfrom/sendto elsewhere): bound to serve any peer
// (bind), or connected to one (connect, for clients). The handler hears on_open when the
// socket is made and on_close when it is destroyed or can serve no more.
#pragma once

#include <memory>
#include <optional>
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
  Counter peer_errors;        // ICMP errors surfacing as ECONNREFUSED & co. (a send that
                              // surfaces one drops its datagram): reported to a connected
                              // socket's handler (on_peer_error), else only counted
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
  // A server socket: bound to `address`, it receives from anyone and answers with
  // send_to; send() is refused (it has no peer).
  static Result<std::unique_ptr<UdpSocket>> bind(EventLoop& loop, const Address& address,
                                                 std::unique_ptr<DatagramHandler> handler,
                                                 const UdpOptions& options = {});
  // Serves an already bound, unconnected UDP socket (one inherited in a handover) as
  // bind() would: EINVAL when `fd` is not one. Datagrams already queued on it are kept.
  // options' buffer sizes and reuse_port are not applied (the socket has its own).
  static Result<std::unique_ptr<UdpSocket>> from_descriptor(EventLoop& loop, Fd fd,
                                                            std::unique_ptr<DatagramHandler> handler,
                                                            const UdpOptions& options = {});
  // A client socket: connect(2)ed to `remote` (IPv4 or IPv6), bound first to `local` if
  // given (else the kernel picks the local address and port). It sends with send() (or
  // send_to the peer), receives from `remote` alone (the kernel drops datagrams from
  // anyone else, and any that reached `local` before the connect), and hears of ICMP
  // errors through on_peer_error. Errors: EAFNOSUPPORT when `remote` is neither IPv4 nor
  // IPv6 or `local` is of the other family; EINVAL for bad options (as bind); bind(2)'s
  // and connect(2)'s own (EADDRINUSE, ENETUNREACH...). UDP's connect sends nothing, so
  // a peer that is not there shows only later, as on_peer_error(ECONNREFUSED).
  // UdpOptions::reuse_port applies to the `local` bind.
  static Result<std::unique_ptr<UdpSocket>> connect(EventLoop& loop, const Address& remote,
                                                    std::unique_ptr<DatagramHandler> handler,
                                                    const UdpOptions& options = {},
                                                    const std::optional<Address>& local = {});
  ~UdpSocket() override;  // on_close(shutdown), if still serving

  bool send_to(const Address& to, const void* data, size_t n) override;
  using DatagramSocket::send_to;
  bool send(const void* data, size_t n) override;
  using DatagramSocket::send;
  bool output_full() const noexcept override { return output_full_; }
  bool is_open() const noexcept override { return open_; }
  const Address& local_address() const noexcept override { return local_; }
  int descriptor() const noexcept { return fd_.get(); }  // the socket: to pass on
  // The peer as the kernel has it (getpeername) after connect; unset (AF_UNSPEC) for a
  // socket from bind().
  const Address& peer_address() const noexcept override { return peer_; }
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
  UdpSocket(EventLoop& loop, Fd fd, const Address& local, const Address& peer,
            std::unique_ptr<DatagramHandler> handler, const UdpOptions& options);
  static Result<Fd> open_socket(int family, const UdpOptions& options);
  // Serves `fd` (bound, and connected if `peer` is set): by completion or readiness, then
  // on_open.
  static Result<std::unique_ptr<UdpSocket>> start(EventLoop& loop, Fd fd, const Address& local,
                                                  const Address& peer,
                                                  std::unique_ptr<DatagramHandler> handler,
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
  // An ICMP error surfaced (`dropped` datagrams with it, if on a send): counted, and for a
  // connected socket reported to the handler from a timer (never from inside a send or a
  // receive batch).
  void note_peer_error(int err, size_t dropped);
  void report_peer_error();
  // Where a send goes: nowhere named for a connected socket (its peer), else `to`.
  const sockaddr* send_name(const Address& to) const noexcept {
    return connected() ? nullptr : to.sockaddr_ptr();
  }
  socklen_t send_name_length(const Address& to) const noexcept {
    return connected() ? 0 : to.length();
  }

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
  Address peer_;  // connected: the only peer; else unset
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
  int peer_error_ = 0;  // an errno for on_peer_error, whose timer is pending
  // Light-load mode: one datagram per wake-up, with a full-batch probe every few.
  static constexpr unsigned kLightBatchesForSingle = 8;
  static constexpr unsigned kProbeEvery = 16;
  bool single_mode_ = false;
  unsigned light_batches_ = 0;
  unsigned wakeups_since_probe_ = 0;
  UdpStats stats_;
};

}  // namespace netloop
