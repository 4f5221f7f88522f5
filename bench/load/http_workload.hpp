// HttpWorkload: http. Each connection sends keep-alive GETs of one URL, K in flight, and
// counts the responses by status code.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "request_train.hpp"
#include "stream_load.hpp"

namespace netloop::load {

class HttpWorkload final : public Workload {
 public:
  static constexpr int kMaxStatus = 599;

  explicit HttpWorkload(const LoadOptions& options);

  std::unique_ptr<Session> make_session(StreamLoad& load, size_t slot) override;
  bool reconnects() const noexcept override { return true; }
  void start_measuring() override { statuses_.fill(0); }

  // Responses of the measured window by status code (100 to 599).
  const std::array<uint64_t, kMaxStatus + 1>& statuses() const noexcept { return statuses_; }
  std::string_view request() const noexcept { return train_.at(0); }

 private:
  friend class HttpSession;

  RequestTrain train_;
  std::array<uint64_t, kMaxStatus + 1> statuses_{};
};

}  // namespace netloop::load
