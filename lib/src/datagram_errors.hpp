// Private: which errors on a UDP socket are about some peer, not about the socket.
#pragma once

#include <cerrno>

namespace netloop {

// An ICMP error from an earlier send to some peer (port or host unreachable), surfacing
// on a later receive or send: it says nothing about this socket, which goes on.
inline bool is_datagram_peer_error(int err) noexcept {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH ||
         err == EHOSTDOWN || err == ENETDOWN || err == ECONNRESET;
}

}  // namespace netloop
