// io_uring datagram channels, the backend's completion side: one multishot recvmsg per
// UDP socket, fed from a ring of provided buffers, and sends as sendmsg entries that go in
// with the poller's next wait, all on the poller's ring (io_uring.cpp).
//
// Receive: each datagram completes into one of the channel's buffers (io_uring_recvmsg_out
// header, the sender's address, the payload); process() hands it to the sink and lends the
// buffer back. The multishot receive ends when the buffers run out (ENOBUFS: the datagrams
// wait in the socket meanwhile) or on an error; process() queues it again once buffers are
// back. An error the sink calls harmless (an ICMP error from an earlier send) ends it too,
// and it is simply queued again.
//
// Send: the header, address and payload are copied into the channel's send slots, whose
// memory stays put until the send's completion. With MSG_DONTWAIT the kernel runs each
// send as it is submitted and completes it then (a full send buffer completes it with
// EAGAIN rather than parking it), so the poller's wait counts on one completion per send.
//
// A channel's completions carry kChannelBit | generation << 40 | index << 16 | slot, where
// the index is also the channel's buffer group id and the slot is a send's, or
// kReceiveSlot for the receive.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "poller/io_uring.hpp"

namespace netloop {
namespace uring {
namespace {

constexpr uint32_t kReceiveSlot = 0xffff;
constexpr uint32_t kMaxChannels = 0xffff;  // a channel's index is its buffer group id
constexpr uint32_t kGenerationMask = (1u << 22) - 1;
constexpr size_t kSendSlots = 256;
constexpr size_t kSendBytes = 1 << 20;  // payload room for the sends of one iteration

void* map_pages(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

size_t round_to_page(size_t bytes) {
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

constexpr uint64_t channel_tag(uint32_t gen, uint32_t index, uint32_t slot) {
  return kChannelBit | (uint64_t(gen & kGenerationMask) << 40) | (uint64_t(index) << 16) | slot;
}

}  // namespace

// Everything of a channel the kernel may still touch: its receive buffers and buffer ring,
// and the message headers and payloads of its sends. When a channel cannot be closed
// cleanly (the ring refuses this thread's submissions), this outlives it in UringChannels
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
  UringChannel(UringChannels& owner, int fd, void* token, uint32_t index, uint32_t gen,
               std::unique_ptr<ChannelMemory> memory, size_t max_datagram);
  ~UringChannel() override;

  size_t process(DatagramChannelSink& sink, size_t max_datagrams) override;
  bool send(const sockaddr* to, unsigned to_length, const void* data, size_t n) override;
  void settle(DatagramChannelSink& sink) override;

 private:
  friend class UringChannels;
  // One completion not handed to the sink yet.
  struct Completion {
    bool send;       // a send's result, else a receive
    int32_t res;     // bytes, or -errno
    uint32_t flags;  // the CQE's flags (receive: buffer id, more to come)
  };

  // Queues the multishot receive (or asks to be queued at the next wait, when the ring has
  // no room now).
  void arm();
  uint64_t receive_tag() const { return channel_tag(gen_, index_, kReceiveSlot); }
  void take(const io_uring_cqe& cqe, uint32_t slot);
  void send_done(uint32_t slot);  // a send's completion came back: its slot is free
  void report_sends(DatagramChannelSink& sink);  // takes the send results off done_

  UringChannels& owner_;
  UringPoller& ring_;
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
  bool listed_ = false;      // in the owner's list of channels to report
  std::vector<Completion> done_;
  size_t done_head_ = 0;
  std::vector<uint16_t> free_slots_;
  size_t payload_used_ = 0;
  size_t in_flight_ = 0;     // sends queued or submitted whose completion has not come back
};

ChannelMemory::ChannelMemory(size_t buffers, size_t buffer_bytes, size_t send_slots,
                             size_t send_bytes)
    : buffers(buffers),
      buffer_bytes(buffer_bytes),
      area_bytes(round_to_page(buffers * buffer_bytes)),
      ring_bytes(round_to_page(buffers * sizeof(io_uring_buf))),
      slots(send_slots),
      payload(new char[send_bytes]),
      payload_bytes(send_bytes) {
  area = static_cast<char*>(map_pages(area_bytes));
  ring = static_cast<io_uring_buf_ring*>(map_pages(ring_bytes));
}

ChannelMemory::~ChannelMemory() {
  if (area) ::munmap(area, area_bytes);
  if (ring) ::munmap(ring, ring_bytes);
}

UringChannel::UringChannel(UringChannels& owner, int fd, void* token, uint32_t index,
                           uint32_t gen, std::unique_ptr<ChannelMemory> memory,
                           size_t max_datagram)
    : owner_(owner),
      ring_(owner.ring_),
      fd_(fd),
      token_(token),
      index_(index),
      gen_(gen),
      max_datagram_(max_datagram),
      mem_(std::move(memory)),
      buffer_mask_(unsigned(io_uring_buf_ring_mask(unsigned(mem_->buffers)))) {
  receive_header_.msg_namelen = sizeof(sockaddr_storage);
  io_uring_buf_ring_init(mem_->ring);
  for (size_t i = 0; i < mem_->buffers; ++i)
    io_uring_buf_ring_add(mem_->ring, mem_->area + i * mem_->buffer_bytes,
                          unsigned(mem_->buffer_bytes), uint16_t(i), int(buffer_mask_), int(i));
  io_uring_buf_ring_advance(mem_->ring, int(mem_->buffers));
  free_slots_.reserve(mem_->slots.size());
  for (size_t i = mem_->slots.size(); i-- > 0;) free_slots_.push_back(uint16_t(i));
  done_.reserve(mem_->buffers + mem_->slots.size());
}

UringChannel::~UringChannel() { owner_.close(*this); }

void UringChannel::arm() {
  if (armed_ || failed_) return;
  io_uring_sqe* sqe = ring_.get_sqe();
  if (!sqe) {
    owner_.arm_later_.push_back(this);
    return;
  }
  io_uring_prep_recvmsg_multishot(sqe, fd_, &receive_header_, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = uint16_t(index_);
  io_uring_sqe_set_data64(sqe, receive_tag());
  armed_ = true;
}

size_t UringChannel::process(DatagramChannelSink& sink, size_t max_datagrams) {
  size_t handled = 0;
  int lent_back = 0;
  // Index, not iterator: a send from the sink may take more completions onto done_.
  while (done_head_ < done_.size()) {
    const Completion c = done_[done_head_];
    if (c.send) {
      ++done_head_;
      if (c.res >= 0)
        sink.on_channel_sent(size_t(c.res));
      else
        sink.on_channel_send_failed(-c.res);
      continue;
    }
    if (handled >= max_datagrams) break;
    ++done_head_;
    if (c.res < 0) {
      const int err = -c.res;
      if (err == ENOBUFS || err == ECANCELED) continue;  // queued again below
      if (sink.on_channel_receive_error(err)) continue;
      // The kernel refusing the receive itself (EINVAL: no multishot recvmsg before Linux
      // 6.0): queuing it again would only fail again.
      failed_ = true;
      report_sends(sink);  // what follows the receive's end is send results only
      done_.clear();
      done_head_ = 0;
      return handled;
    }
    if (!(c.flags & IORING_CQE_F_BUFFER)) continue;
    const unsigned id = c.flags >> IORING_CQE_BUFFER_SHIFT;
    if (id >= mem_->buffers) continue;
    char* buffer = mem_->area + size_t(id) * mem_->buffer_bytes;
    ++handled;
    io_uring_recvmsg_out* o = io_uring_recvmsg_validate(buffer, c.res, &receive_header_);
    if (!o || (o->flags & MSG_TRUNC) || o->payloadlen > max_datagram_) {
      sink.on_channel_truncated();
    } else {
      const auto* payload = static_cast<const std::byte*>(io_uring_recvmsg_payload(o, &receive_header_));
      const unsigned name_length = std::min<unsigned>(o->namelen, sizeof(sockaddr_storage));
      sink.on_channel_datagram({payload, o->payloadlen},
                               static_cast<const sockaddr*>(io_uring_recvmsg_name(o)), name_length);
    }
    io_uring_buf_ring_add(mem_->ring, buffer, unsigned(mem_->buffer_bytes), uint16_t(id),
                          int(buffer_mask_), lent_back++);
  }
  if (lent_back) io_uring_buf_ring_advance(mem_->ring, lent_back);
  if (done_head_ == done_.size()) {
    done_.clear();
    done_head_ = 0;
  } else {
    owner_.list(*this);  // more than max_datagrams: the rest at the next wait
  }
  arm();  // after buffers went back: a receive that ran dry goes on
  return handled;
}

bool UringChannel::send(const sockaddr* to, unsigned to_length, const void* data, size_t n) {
  if (to_length > sizeof(sockaddr_storage) || (to == nullptr) != (to_length == 0)) return false;
  if (free_slots_.empty() || payload_used_ + n > mem_->payload_bytes) {
    ring_.submit_and_reap();  // they complete as they go in, and give their room back
    if (free_slots_.empty() || payload_used_ + n > mem_->payload_bytes) return false;
  }
  io_uring_sqe* sqe = ring_.get_sqe();
  if (!sqe) return false;
  const uint16_t slot = free_slots_.back();
  free_slots_.pop_back();
  ChannelMemory::SendSlot& s = mem_->slots[slot];
  char* payload = mem_->payload.get() + payload_used_;
  if (n) std::memcpy(payload, data, n);
  payload_used_ += n;
  if (to) std::memcpy(&s.to, to, to_length);
  s.iov = {payload, n};
  s.header = {};
  s.header.msg_name = to ? &s.to : nullptr;
  s.header.msg_namelen = to_length;
  s.header.msg_iov = &s.iov;
  s.header.msg_iovlen = 1;
  io_uring_prep_sendmsg(sqe, fd_, &s.header, MSG_DONTWAIT | MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, channel_tag(gen_, index_, slot));
  ++in_flight_;
  return true;
}

void UringChannel::settle(DatagramChannelSink& sink) {
  if (in_flight_ > 0) ring_.submit_and_reap();
  report_sends(sink);
}

void UringChannel::report_sends(DatagramChannelSink& sink) {
  // Receives stay queued, in order; sends are reported and dropped from the queue. The
  // sink only counts: it queues nothing on this channel from here.
  size_t keep = done_head_;
  for (size_t i = done_head_; i < done_.size(); ++i) {
    const Completion c = done_[i];
    if (!c.send) {
      done_[keep++] = c;
    } else if (c.res >= 0) {
      sink.on_channel_sent(size_t(c.res));
    } else {
      sink.on_channel_send_failed(-c.res);
    }
  }
  done_.resize(keep);
}

void UringChannel::take(const io_uring_cqe& cqe, uint32_t slot) {
  if (slot == kReceiveSlot) {
    if (!(cqe.flags & IORING_CQE_F_MORE)) armed_ = false;  // the multishot receive ended
    done_.push_back({false, cqe.res, cqe.flags});
  } else {
    send_done(slot);
    done_.push_back({true, cqe.res, 0});
  }
  owner_.list(*this);
}

void UringChannel::send_done(uint32_t slot) {
  if (slot >= mem_->slots.size() || in_flight_ == 0) return;
  free_slots_.push_back(uint16_t(slot));
  if (--in_flight_ == 0) payload_used_ = 0;
}

// ---------------------------------------------------------------------------------------
// UringChannels

UringChannels::UringChannels(UringPoller& ring) : ring_(ring) {}

UringChannels::~UringChannels() = default;  // retired_ goes, now that the ring has

Result<std::unique_ptr<DatagramChannel>> UringChannels::open(
    int fd, void* token, const DatagramChannelOptions& options) {
  const size_t n = options.buffers;
  if (fd < 0) return make_error(EBADF);
  if (n < 2 || n > 32768 || (n & (n - 1)) != 0 || options.max_datagram == 0 ||
      options.max_datagram > 65535)
    return make_error(EINVAL);
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    if (channels_.size() >= kMaxChannels) return make_error(ENOSPC);
    index = uint32_t(channels_.size());
    channels_.push_back(nullptr);
    generation_.push_back(0);
  }
  auto give_back = [&] { free_.push_back(index); };
  // A buffer holds the header, the largest address and one byte more than the largest
  // datagram wanted: a datagram that fills it is whole, one that overflows is truncated.
  // Rounded up to a cache line: each buffer starts aligned for its header.
  const size_t buffer_bytes = (sizeof(io_uring_recvmsg_out) + sizeof(sockaddr_storage) +
                               options.max_datagram + 1 + 63) / 64 * 64;
  auto memory = std::make_unique<ChannelMemory>(n, buffer_bytes, kSendSlots, kSendBytes);
  if (!memory->ok()) {
    give_back();
    return make_error(ENOMEM);
  }
  io_uring_buf_reg reg;
  std::memset(&reg, 0, sizeof reg);
  reg.ring_addr = reinterpret_cast<uintptr_t>(memory->ring);
  reg.ring_entries = unsigned(n);
  reg.bgid = uint16_t(index);
  if (int r = ring_.register_buffer_ring(reg); r < 0) {
    give_back();  // before Linux 5.19 (EINVAL): no buffer rings, so no channels
    return make_error(-r == EINVAL ? ENOTSUP : -r);
  }
  const uint32_t gen = ++generation_[index];
  auto ch = std::make_unique<UringChannel>(*this, fd, token, index, gen, std::move(memory),
                                           options.max_datagram);
  channels_[index] = ch.get();
  ch->arm();
  return std::unique_ptr<DatagramChannel>(std::move(ch));
}

void UringChannels::take(const io_uring_cqe& cqe) {
  const uint64_t data = io_uring_cqe_get_data64(&cqe);
  const uint32_t slot = uint32_t(data & 0xffff);
  const uint32_t index = uint32_t((data >> 16) & 0xffffff);
  const uint32_t gen = uint32_t((data >> 40) & kGenerationMask);
  UringChannel* ch = index < channels_.size() ? channels_[index] : nullptr;
  if (!ch || (ch->gen_ & kGenerationMask) != gen) return;  // closed since: stale
  ch->take(cqe, slot);
}

void UringChannels::arm_pending() {
  if (arm_later_.empty()) return;
  std::vector<UringChannel*> again;
  again.swap(arm_later_);
  for (UringChannel* ch : again) ch->arm();  // one that still finds no room asks again
}

void UringChannels::list(UringChannel& ch) {
  if (ch.listed_) return;
  ch.listed_ = true;
  listed_.push_back(&ch);
}

size_t UringChannels::report(std::span<PollEvent> out, size_t count) {
  size_t used = 0;
  for (; used < listed_.size() && count < out.size(); ++used) {
    UringChannel* ch = listed_[used];
    ch->listed_ = false;
    out[count++] = {ch->token_, ready::readable};
  }
  listed_.erase(listed_.begin(), listed_.begin() + ptrdiff_t(used));
  return count;
}

void UringChannels::close(UringChannel& ch) {
  bool handed_over = false;
  if (ring_.enabled()) {
    // The cancellation and the queued sends go in now: the kernel then holds nothing of
    // the channel's socket, and its last replies still go out (they complete as they go
    // in, so nothing reads their memory afterwards).
    io_uring_sqe* sqe = ch.armed_ ? ring_.get_sqe() : nullptr;
    if (sqe) {
      io_uring_prep_cancel64(sqe, ch.receive_tag(), 0);
      io_uring_sqe_set_data64(sqe, kIgnoredTag);
    }
    handed_over = (sqe || !ch.armed_) && ring_.submit_all();
  }
  // Not handed over (the ring is not enabled yet, or refuses this thread): whatever of the
  // channel still waits in the submission queue becomes a no-op, so that no later
  // submission receives on a descriptor number that may belong to someone else by then.
  if (!handed_over) ring_.forget_queued(channel_tag(ch.gen_, ch.index_, 0), ~uint64_t(0xffff));
  const bool unregistered = ring_.unregister_buffer_ring(uint16_t(ch.index_));
  channels_[ch.index_] = nullptr;
  if (unregistered && (handed_over || !ch.armed_)) {
    free_.push_back(ch.index_);
  } else {
    // A receive the kernel may still run, or a buffer group it still knows: the memory
    // (and the group id) stay until the ring's own end.
    retired_.push_back(std::move(ch.mem_));
  }
  std::erase(listed_, &ch);
  std::erase(arm_later_, &ch);
}

}  // namespace uring
}  // namespace netloop
