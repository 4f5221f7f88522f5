// RespWorkload: resp. Each connection sends one Redis command (PING, SET or GET) over and
// over, K in flight, and counts the replies by type.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "request_train.hpp"
#include "resp_reply_parser.hpp"
#include "stream_load.hpp"

namespace netloop::load {

class RespWorkload final : public Workload {
 public:
  explicit RespWorkload(const LoadOptions& options);

  std::unique_ptr<Session> make_session(StreamLoad& load, size_t slot) override;
  bool reconnects() const noexcept override { return true; }
  void start_measuring() override { replies_.fill(0); }
  size_t prelude_bytes() const noexcept override { return prime_.size(); }

  // Replies of the measured window by type (RespReplyParser::Type).
  const std::array<uint64_t, RespReplyParser::kTypes>& replies() const noexcept { return replies_; }
  uint64_t replies_of(RespReplyParser::Type t) const noexcept { return replies_[size_t(t)]; }
  std::string_view command() const noexcept { return train_.at(0); }

 private:
  friend class RespSession;

  RequestTrain train_;
  std::string prime_;   // get: the SET each connection sends first, so GET finds a value
  std::array<uint64_t, RespReplyParser::kTypes> replies_{};
  bool error_shown_ = false;  // the first error reply's text has been printed
};

}  // namespace netloop::load
