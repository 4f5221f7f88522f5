// What a listener expecting a PROXY protocol header (ListenerOptions::proxy_protocol)
// needs to know: which peers may send one, how long the header may take, and the parser's
// limits. A header of its own: tcp_listener.hpp only declares ProxyProtocolOptions, so
// code that does not use the PROXY protocol does not include the parser's types.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/clock.hpp"
#include "netloop/proxy_protocol.hpp"
#include "netloop/result.hpp"

namespace netloop {

// An IPv4 or IPv6 network in CIDR form: "10.0.0.0/8", "::1/128", or a bare address (one
// host). Parsing is strict: host bits set past the prefix ("10.0.0.1/8"), a prefix out of
// range or with a sign or leading zero, an interface suffix or a name are errors, so a
// typo in a trust list cannot quietly widen it.
class Cidr {
 public:
  // On failure `why` (if given) says what is wrong with `text`, naming it.
  static Result<Cidr> parse(std::string_view text, std::string* why = nullptr);
  // A comma-separated list ("10.0.0.0/8,::1/128"); an empty item is an error.
  static Result<std::vector<Cidr>> parse_list(std::string_view text, std::string* why = nullptr);

  // Whether `address` is in the network. An IPv4-mapped IPv6 address (::ffff:a.b.c.d,
  // from a dual-stack socket) is matched as the IPv4 address it carries.
  bool contains(const Address& address) const noexcept;

  int family() const noexcept { return family_; }  // AF_INET or AF_INET6
  unsigned prefix_length() const noexcept { return prefix_; }
  std::string to_string() const;  // "10.0.0.0/8"

  friend bool operator==(const Cidr&, const Cidr&) noexcept = default;

 private:
  int family_ = 0;
  unsigned prefix_ = 0;
  std::array<uint8_t, 16> bytes_{};  // network order; IPv4 uses the first 4
};

struct ProxyProtocolOptions {
  // Peers allowed to send a header. Any other peer is closed at once: its bytes are never
  // read as a header, nor handed to the handler as the client's. Default: loopback only.
  std::vector<Cidr> trusted = loopback_only();
  // From the accept to the whole header; a peer that has not sent it by then is closed
  // (see defer_accept for when a silent peer is accepted).
  Duration header_timeout = seconds(5);
  // Linux: the listener defers each accept until the peer's first bytes have come
  // (TCP_DEFER_ACCEPT, for about header_timeout), and the header is read at once on
  // accepting. A balancer sends its header in a segment of its own right after connecting:
  // without this, the connection is accepted on the handshake and its header costs one
  // more wake-up. A peer that connects and stays silent holds no descriptor meanwhile; the
  // kernel hands it over once its SYN-ACK retransmissions cover the deferral (after 1, 3,
  // 7, 15... s: 7 s for the default 5 s), and header_timeout then runs from that accept,
  // so a silent peer is closed after about 12 s by default. An untrusted peer waits in the
  // kernel the same way, and is closed unread at its accept. Elsewhere (no
  // TCP_DEFER_ACCEPT) this does nothing.
  bool defer_accept = true;
  proxy_protocol::ParseOptions parse{};

  // Whether `peer` (the socket's own peer) may send a header.
  bool trusts(const Address& peer) const noexcept;
  static std::vector<Cidr> loopback_only();  // 127.0.0.0/8 and ::1/128
};

}  // namespace netloop
