// RequestTrain: one request repeated back to back, so that consecutive requests of a
// pipeline lie next to each other in memory and go out as one piece of one write.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace netloop::load {

class RequestTrain {
 public:
  // Enough copies for `pipeline` requests, within `max_bytes` (at least one copy).
  RequestTrain(std::string_view request, size_t pipeline, size_t max_bytes)
      : len_(request.size()), copies_(std::clamp<size_t>(max_bytes / request.size(), 1, pipeline)) {
    bytes_.reserve(len_ * copies_);
    for (size_t i = 0; i < copies_; ++i) bytes_ += request;
  }

  // Request `seq`: copy seq % copies, so requests seq and seq + 1 are adjacent but at the
  // end of the train.
  std::string_view at(uint64_t seq) const noexcept {
    return {bytes_.data() + size_t(seq % copies_) * len_, len_};
  }
  size_t request_size() const noexcept { return len_; }

 private:
  std::string bytes_;
  size_t len_;
  size_t copies_;
};

}  // namespace netloop::load
