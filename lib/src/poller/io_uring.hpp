// Private: the io_uring backend's poller and datagram channel (io_uring.cpp holds the
// ring and the readiness polls, io_uring_channel.cpp the channels).
//
// Completions are told apart by their user_data tag:
//   readiness poll   (generation << 32) | fd                     (bit 63 clear)
//   channel receive  kChannelBit | gen << 40 | index << 16 | kReceiveSlot
//   channel send     kChannelBit | gen << 40 | index << 16 | send slot
//   ignored          ~0 (cancellations and removals)
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "poller/backends.hpp"

namespace netloop::uring {

constexpr uint64_t kIgnoredTag = ~uint64_t(0);
constexpr uint64_t kChannelBit = uint64_t(1) << 63;
constexpr uint32_t kReceiveSlot = 0xffff;
constexpr uint32_t kMaxChannels = 0xffff;  // a channel's index is its buffer group id
constexpr uint32_t kGenerationMask = (1u << 22) - 1;

constexpr uint64_t channel_tag(uint32_t gen, uint32_t index, uint32_t slot) {
  return kChannelBit | (uint64_t(gen & kGenerationMask) << 40) | (uint64_t(index) << 16) | slot;
}

class UringPoller;

// One completion a channel has not handed to its sink yet.
struct ChannelCompletion {
  bool send;       // a send's result, else a receive
  int32_t res;     // bytes, or -errno
  uint32_t flags;  // the CQE's flags (receive: buffer id, more to come)
};

// Everything of a channel the kernel may still touch: its receive buffers and buffer ring,
// and the message headers and payloads of its sends. When a channel cannot be closed
// cleanly (the ring refuses this thread's submissions), this outlives it in the poller
// until the ring itself is gone.
struct ChannelMemory {
  ChannelMemory(size_t buffers, size_t buffer_bytes, size_t send_slots, size_t send_bytes);
  ~ChannelMemory();
  ChannelMemory(const ChannelMemory&) = delete;
  ChannelMemory& operator=(const ChannelMemory&) = delete;
  bool ok() const { return area != nullptr && ring != nullptr; }

  struct SendSlot {
    msghdr header;
    iovec iov;
    sockaddr_storage to;
  };

  size_t buffers;
  size_t buffer_bytes;
  size_t area_bytes;
  size_t ring_bytes;
  char* area = nullptr;                // buffers * buffer_bytes, mmap'd: untouched pages cost nothing
  io_uring_buf_ring* ring = nullptr;   // page-aligned, mmap'd
  std::vector<SendSlot> slots;         // fixed: the kernel reads headers until submission
  std::unique_ptr<char[]> payload;     // send payloads, bump-allocated
  size_t payload_bytes;
};

class UringChannel final : public DatagramChannel {
 public:
  UringChannel(UringPoller& poller, int fd, void* token, uint32_t index, uint32_t gen,
               std::unique_ptr<ChannelMemory> memory, size_t max_datagram);
  ~UringChannel() override;

  size_t process(DatagramChannelSink& sink, size_t max_datagrams) override;
  bool send(const sockaddr* to, unsigned to_length, const void* data, size_t n) override;
  void settle(DatagramChannelSink& sink) override;

 private:
  friend class UringPoller;
  // Queues the multishot receive (or asks the poller to, at its next wait, when the ring
  // has no room now).
  void arm();
  uint64_t receive_tag() const { return channel_tag(gen_, index_, kReceiveSlot); }
  void send_done(uint32_t slot);  // a send's completion came back: its slot is free
  void report_sends(DatagramChannelSink& sink);  // takes the send results off done_

  UringPoller& poller_;
  int fd_;
  void* token_;
  uint32_t index_;
  uint32_t gen_;
  size_t max_datagram_;
  std::unique_ptr<ChannelMemory> mem_;
  msghdr receive_header_{};  // the shape of every receive: a name, no control data
  unsigned buffer_mask_;
  bool armed_ = false;       // a multishot receive is in the kernel
  bool failed_ = false;      // the kernel refused the receive: nothing more will come
  bool listed_ = false;      // in the poller's list of channels to report
  std::vector<ChannelCompletion> done_;
  size_t done_head_ = 0;
  std::vector<uint16_t> free_slots_;
  size_t payload_used_ = 0;
  size_t in_flight_ = 0;     // sends queued or submitted whose completion has not come back
};

class UringPoller final : public Poller {
 public:
  UringPoller() = default;
  ~UringPoller() override;
  int init();

  std::string_view name() const noexcept override { return "io_uring"; }
  std::error_code add(int fd, Interest interest, void* token) override;
  std::error_code modify(int fd, Interest interest, void* token) override;
  std::error_code remove(int fd) override;
  Result<size_t> wait(std::span<PollEvent> out, int timeout_ms) override;
  Result<std::unique_ptr<DatagramChannel>> open_datagram_channel(
      int fd, void* token, const DatagramChannelOptions& options) override;

 private:
  friend class UringChannel;

  struct Reg {
    void* token = nullptr;
    Interest interest = Interest::none;
    uint32_t gen = 0;
    bool active = false;
    bool armed = false;
    bool edge = false;  // waiting for write space with a multishot poll (peer half-closed)
  };

  bool registered(int fd) const {
    return fd >= 0 && size_t(fd) < regs_.size() && regs_[fd].active;
  }
  io_uring_sqe* get_sqe();
  int submit();  // hands queued entries to the kernel (and runs its deferred work)
  bool enable();
  void cancel(int fd, bool submit_now);
  bool arm_pending();
  // Takes every completion the ring holds: readiness into `out` (then into pending_ when
  // out is full or absent), channel work onto the channels' lists.
  size_t reap(std::span<PollEvent> out);
  void take(const io_uring_cqe& cqe, std::span<PollEvent> out, size_t& count);
  size_t report_channels(std::span<PollEvent> out, size_t count);
  void list_channel(UringChannel& ch);
  // Called by a channel whose sends have no room: submits the queued ones, which the
  // kernel runs at once (MSG_DONTWAIT), and takes their completions.
  void flush_sends();
  void close_channel(UringChannel& ch);
  void forget_queued(const UringChannel& ch);  // its unsubmitted entries become no-ops

  io_uring ring_{};
  bool initialized_ = false;
  bool enabled_ = true;  // false: created disabled, enabled by the first wait, on its thread
  bool warned_thread_ = false;
  std::vector<Reg> regs_;    // by descriptor
  std::vector<int> to_arm_;  // descriptors whose poll must be (re)armed at the next wait
  std::vector<PollEvent> pending_;  // readiness taken outside a wait, for the next one

  std::vector<UringChannel*> channels_;    // by index; null when free
  std::vector<uint32_t> channel_gen_;      // by index
  std::vector<uint32_t> free_channels_;
  std::vector<UringChannel*> listed_;      // channels with work for their owner
  std::vector<UringChannel*> arm_channels_;  // receives to queue at the next wait (no room before)
  std::vector<std::unique_ptr<ChannelMemory>> retired_;  // freed after the ring
};

}  // namespace netloop::uring
