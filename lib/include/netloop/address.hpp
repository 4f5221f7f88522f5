// Address: an IPv4 or IPv6 socket address, parsed from and printed as host:port or [v6]:port.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include "netloop/result.hpp"

namespace netloop {

class Address {
 public:
  Address() noexcept;  // AF_UNSPEC, prints as "-"

  // Parses a numeric address: "1.2.3.4:80", "[::1]:80", and "localhost:80" as the one
  // name it knows (127.0.0.1). It never resolves names: a host name is an error here,
  // and a loop thread must not block on DNS. Port 0 is allowed (the kernel picks one).
  // On failure `why` (if given) says what is wrong, e.g. "port 70000 out of range".
  static Result<Address> parse_numeric(std::string_view text, std::string* why = nullptr);
  static Address from_sockaddr(const sockaddr* sa, socklen_t len) noexcept;
  // The address socket `fd` is bound to (getsockname), or `otherwise` when the kernel
  // will not say.
  static Address local_of(int fd, const Address& otherwise) noexcept;
  static Address ipv4_loopback(uint16_t port) noexcept;
  static Address ipv6_loopback(uint16_t port) noexcept;

  int family() const noexcept { return storage_.ss_family; }
  bool is_ipv6() const noexcept { return family() == AF_INET6; }
  uint16_t port() const noexcept;
  void set_port(uint16_t port) noexcept;

  const sockaddr* sockaddr_ptr() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }
  sockaddr* sockaddr_ptr() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t length() const noexcept;

  std::string host() const;       // "127.0.0.1" or "::1"
  std::string to_string() const;  // "127.0.0.1:80" or "[::1]:80"

  friend bool operator==(const Address& a, const Address& b) noexcept;

 private:
  sockaddr_storage storage_;
};

}  // namespace netloop
