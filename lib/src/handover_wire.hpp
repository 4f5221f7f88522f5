// The handover's wire format (netloop/handover.hpp): text lines, one descriptor riding on
// each "socket" line (SCM_RIGHTS), and the UNIX socket calls both sides share.
#pragma once

#include <sys/un.h>

#include <string>
#include <string_view>
#include <vector>

#include "netloop/fd.hpp"
#include "netloop/server.hpp"

namespace netloop::handover_wire {

constexpr size_t kMaxLine = 512;
constexpr std::string_view kRequest = "netloop-handover 1";
constexpr std::string_view kTaken = "taken";
constexpr std::string_view kDraining = "draining";

// "socket stream|datagram LOOP ADDRESS NAME": the name last, as it is (no newline in it).
std::string socket_line(const ListeningSocket& s);
// The line's fields into `out` (not its fd); false with `why` when it is not one.
bool parse_socket_line(std::string_view line, ListeningSocket& out, std::string* why);

// false (errno ENAMETOOLONG) when `path` does not fit a UNIX socket address.
bool make_address(const std::string& path, sockaddr_un& out, socklen_t& len);

// One nonblocking sendmsg of `data` with `fd` attached (-1: none), without SIGPIPE.
ssize_t send_with_fd(int sock, std::string_view data, int fd) noexcept;
// One nonblocking recvmsg; descriptors that came with the bytes are appended to `fds`
// (close-on-exec). `truncated`: the kernel dropped some (a control buffer too small).
ssize_t receive(int sock, char* buf, size_t n, std::vector<Fd>& fds, bool& truncated) noexcept;

// Takes the first complete line off `buffer` into `line`; false when there is none yet.
// `too_long`: no newline within kMaxLine bytes.
bool next_line(std::string& buffer, std::string& line, bool& too_long);

}  // namespace netloop::handover_wire
