// ClientSlot: one connection's count in a ClientConnectionLimit (client_limit.hpp), kept
// apart so a connection can hold one without pulling in the table's headers.
#pragma once

#include "netloop/address.hpp"
#include "netloop/client_key.hpp"

namespace netloop {

class ClientConnectionLimit;

// One connection's count in a ClientConnectionLimit, given back exactly once: by release()
// or by the destructor, whichever comes first. Empty (nothing held) by default.
class ClientSlot {
 public:
  ClientSlot() noexcept = default;
  // Takes a count for `peer`'s client; an empty slot when it is at its limit.
  static ClientSlot acquire(ClientConnectionLimit& limit, const Address& peer) noexcept;
  ClientSlot(ClientSlot&& o) noexcept : limit_(o.limit_), key_(o.key_) { o.limit_ = nullptr; }
  ClientSlot& operator=(ClientSlot&& o) noexcept;
  ClientSlot(const ClientSlot&) = delete;
  ClientSlot& operator=(const ClientSlot&) = delete;
  ~ClientSlot() { release(); }

  explicit operator bool() const noexcept { return limit_ != nullptr; }
  const ClientKey& key() const noexcept { return key_; }
  void release() noexcept;

 private:
  ClientConnectionLimit* limit_ = nullptr;
  ClientKey key_{};
};

}  // namespace netloop
