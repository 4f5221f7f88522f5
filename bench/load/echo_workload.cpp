// EchoWorkload: the messages of a connection (windows of one pattern, gathered into
// one write), and the check of every echoed byte.
#include "echo_workload.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "pattern.hpp"

namespace netloop::load {

class EchoSession final : public Session {
 public:
  EchoSession(StreamLoad& load, size_t slot, EchoWorkload& workload)
      : Session(load, slot), w_(workload), size_(workload.size_) {}

 private:
  std::string_view request(uint64_t seq) const noexcept override {
    return {w_.pattern_for(slot(), seq), size_};
  }

  void consume(const char* data, size_t n, uint64_t now) override {
    if (bytes_in_ + n > bytes_written()) {
      ++w_.mismatches_;
      fail("the server echoed " + std::to_string(bytes_in_ + n - bytes_written()) +
           " more bytes than were sent");
      return;
    }
    bytes_in_ += n;
    while (n > 0) {
      const size_t take = std::min(n, size_ - recv_pos_);
      const char* want = w_.pattern_for(slot(), received()) + recv_pos_;
      if (std::memcmp(data, want, take) != 0) corrupt_ = true;
      data += take;
      n -= take;
      recv_pos_ += take;
      if (recv_pos_ < size_) break;
      if (corrupt_) {
        corrupt_ = false;
        ++w_.mismatches_;
        load_.report_error(slot(), "echo of message " + std::to_string(received()) +
                                       " differs from what was sent");
      }
      recv_pos_ = 0;
      if (!complete(now)) return;
    }
  }

  bool peer_ended(uint64_t) override {
    if (in_flight() == 0) return true;
    fail("the server closed the connection early (EOF) after " + std::to_string(received()) +
         " messages, with " + std::to_string(in_flight()) + " in flight");
    return false;
  }

  EchoWorkload& w_;
  size_t size_;
  uint64_t bytes_in_ = 0;
  size_t recv_pos_ = 0;   // bytes of the oldest message in flight already echoed
  bool corrupt_ = false;  // the message being received has a wrong byte
};

EchoWorkload::EchoWorkload(const LoadOptions& options)
    : size_(options.size), pattern_(make_pattern(options.size)) {}

std::unique_ptr<Session> EchoWorkload::make_session(StreamLoad& load, size_t slot) {
  return std::make_unique<EchoSession>(load, slot, *this);
}

const char* EchoWorkload::pattern_for(size_t slot, uint64_t seq) const noexcept {
  return pattern_.data() + pattern_offset(slot, seq);
}

}  // namespace netloop::load
