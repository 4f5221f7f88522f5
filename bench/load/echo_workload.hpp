// EchoWorkload: tcp-echo. Each connection keeps K messages of --size bytes in flight and
// checks every echoed byte against the per-connection pattern that was sent.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "stream_load.hpp"

namespace netloop::load {

class EchoWorkload final : public Workload {
 public:
  explicit EchoWorkload(const LoadOptions& options);

  std::unique_ptr<Session> make_session(StreamLoad& load, size_t slot) override;
  bool reconnects() const noexcept override { return false; }

  // Messages whose echo differed from what was sent (over the whole run).
  uint64_t mismatches() const noexcept { return mismatches_; }

 private:
  friend class EchoSession;
  const char* pattern_for(size_t slot, uint64_t seq) const noexcept;

  size_t size_;
  std::vector<char> pattern_;  // every message is a window into this
  uint64_t mismatches_ = 0;
};

}  // namespace netloop::load
