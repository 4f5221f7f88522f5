// Private: the io_uring backend. UringPoller owns the ring and its one wait, and shows two
// faces: the readiness seam (Poller: one-shot polls, io_uring.cpp) and the completion seam
// (CompletionIo: datagram channels, UringChannels in io_uring_channel.cpp, which use the
// ring through the few services UringPoller lends them). One io_uring_enter per wait
// carries the polls' re-arms, the channels' sends and the wait itself.
//
// Completions are told apart by their user_data tag: bit 63 set for a channel's (its
// layout is io_uring_channel.cpp's business), clear for a readiness poll's
// ((generation << 32) | fd), and ~0 for completions nobody wants (cancellations, removals).
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "completion.hpp"
#include "poller/backends.hpp"

namespace netloop::uring {

constexpr uint64_t kIgnoredTag = ~uint64_t(0);
constexpr uint64_t kChannelBit = uint64_t(1) << 63;

class UringPoller;
class UringChannel;
struct ChannelMemory;

// The datagram channels on one ring: their table, and the completions the poller hands
// over until each channel's owner processes them.
class UringChannels {
 public:
  explicit UringChannels(UringPoller& ring);
  // Runs after the ring is gone: only then may memory the kernel could write to be freed.
  ~UringChannels();
  UringChannels(const UringChannels&) = delete;
  UringChannels& operator=(const UringChannels&) = delete;

  Result<std::unique_ptr<DatagramChannel>> open(int fd, void* token,
                                                const DatagramChannelOptions& options);
  // A completion tagged kChannelBit: its channel keeps it for its owner's process().
  void take(const io_uring_cqe& cqe);
  // Queues the receives that found the submission queue full earlier.
  void arm_pending();
  // Channels with work for their owners, each to be reported once as readable.
  size_t waiting() const noexcept { return listed_.size(); }
  // Reports waiting channels into out[count..]; returns the new count.
  size_t report(std::span<PollEvent> out, size_t count);

 private:
  friend class UringChannel;
  void list(UringChannel& ch);
  void close(UringChannel& ch);

  UringPoller& ring_;
  std::vector<UringChannel*> channels_;    // by index; null when free
  std::vector<uint32_t> generation_;       // by index
  std::vector<uint32_t> free_;
  std::vector<UringChannel*> listed_;      // channels with work for their owner
  std::vector<UringChannel*> arm_later_;   // receives to queue at the next wait (no room before)
  std::vector<std::unique_ptr<ChannelMemory>> retired_;  // freed after the ring
};

class UringPoller final : public Poller, public CompletionIo {
 public:
  UringPoller() = default;
  ~UringPoller() override;
  int init();

  std::string_view name() const noexcept override { return "io_uring"; }
  Result<void> add(int fd, Interest interest, void* token) override;
  Result<void> modify(int fd, Interest interest, void* token) override;
  Result<void> remove(int fd) override;
  Result<size_t> wait(std::span<PollEvent> out, int timeout_ms) override;

  Result<std::unique_ptr<DatagramChannel>> open_datagram_channel(
      int fd, void* token, const DatagramChannelOptions& options) override {
    return channels_.open(fd, token, options);
  }

  // The ring's services to the channels, which share it.
  bool enabled() const noexcept { return enabled_; }
  io_uring_sqe* get_sqe();  // null when the queue is full even after a submission
  int submit();             // hands queued entries to the kernel (and runs its deferred work)
  // True when the kernel took every queued entry: one it left behind (an allocation failure
  // stops a submission early) would still read its owner's memory later.
  bool submit_all() { return submit() >= 0 && io_uring_sq_ready(&ring_) == 0; }
  // Submits what is queued and takes every completion now: a channel's sends complete as
  // they go in (MSG_DONTWAIT) and give their room back. Readiness met on the way is kept
  // for the next wait().
  void submit_and_reap();
  // Entries still queued whose tag matches `tag` under `mask` become no-ops: their owner
  // is going, and its descriptor number may soon be someone else's.
  void forget_queued(uint64_t tag, uint64_t mask);
  int register_buffer_ring(const io_uring_buf_reg& reg);  // 0 or -errno
  bool unregister_buffer_ring(uint16_t group);

 private:
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
  bool enable();
  void cancel(int fd, bool submit_now);
  bool arm_pending();
  // Takes every completion the ring holds: readiness into `out` (then into pending_ when
  // out is full or absent), channel work to the channels.
  size_t reap(std::span<PollEvent> out);
  void take(const io_uring_cqe& cqe, std::span<PollEvent> out, size_t& count);

  io_uring ring_{};
  bool initialized_ = false;
  bool enabled_ = true;  // false: created disabled, enabled by the first wait, on its thread
  bool warned_thread_ = false;
  std::vector<Reg> regs_;    // by descriptor
  std::vector<int> to_arm_;  // descriptors whose poll must be (re)armed at the next wait
  std::vector<PollEvent> pending_;  // readiness taken outside a wait, for the next one
  UringChannels channels_{*this};   // destroyed after ~UringPoller() has closed the ring
};

}  // namespace netloop::uring
