// Poller: the backend-neutral readiness interface; the only seam that knows epoll & co.
//
// Contract, the same for every backend (proven by tests/unit/test_poller_conformance.cpp):
// - Level-triggered as seen by the caller: a descriptor is reported on every wait() for
//   as long as it is ready for an interest it is registered with.
// - add() registers a descriptor once, with a non-empty interest and a caller token;
//   modify() replaces interest and token; remove() forgets it (call it before close()).
//   A descriptor with no interest is not registered at all: callers remove() it, since
//   some kernels report hangup and error even for an empty interest.
// - wait() fills the caller's array with at most out.size() events and returns how many;
//   timeout_ms < 0 waits forever, 0 polls. EINTR is reported as zero events.
// - A peer's end of stream (half-close) is reported as readable: read() returns 0.
//   hangup means the descriptor is finished in both directions (closed or reset); error
//   means it has a pending error (read it with SO_ERROR or by the next syscall). Both are
//   reported whatever the interest, as long as there is one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "netloop/result.hpp"

namespace netloop {

// What a caller wants to hear about (bit set).
enum class Interest : uint8_t { none = 0, read = 1, write = 2, read_write = 3 };
constexpr Interest operator|(Interest a, Interest b) noexcept {
  return Interest(uint8_t(a) | uint8_t(b));
}
constexpr Interest operator&(Interest a, Interest b) noexcept {
  return Interest(uint8_t(a) & uint8_t(b));
}
constexpr Interest without(Interest a, Interest b) noexcept {
  return Interest(uint8_t(a) & ~uint8_t(b));
}
constexpr bool has(Interest set, Interest bit) noexcept { return (set & bit) != Interest::none; }

// What happened (bit set).
namespace ready {
constexpr uint32_t readable = 1;
constexpr uint32_t writable = 2;
constexpr uint32_t hangup = 4;
constexpr uint32_t error = 8;
}  // namespace ready

struct PollEvent {
  void* token;     // as given to add()/modify()
  uint32_t ready;  // ready:: bits
};

class Poller {
 public:
  virtual ~Poller() = default;

  virtual std::string_view name() const noexcept = 0;
  virtual Result<void> add(int fd, Interest interest, void* token) = 0;
  virtual Result<void> modify(int fd, Interest interest, void* token) = 0;
  virtual Result<void> remove(int fd) = 0;
  virtual Result<size_t> wait(std::span<PollEvent> out, int timeout_ms) = 0;
};

struct BackendInfo {
  std::string name;
  bool available;      // compiled in and usable on this kernel
  std::string reason;  // why not, when unavailable
};

// Every backend this library knows of, in order of preference, with availability.
std::vector<BackendInfo> available_backends();
// The best available backend's name ("epoll" on Linux).
std::string default_backend();
// Creates a backend by name; an unknown or unavailable name is an error whose message
// (via `why`) names the backends that would work.
Result<std::unique_ptr<Poller>> create_poller(std::string_view name, std::string* why = nullptr);

}  // namespace netloop
