// PROXY protocol v1 and v2 (HAProxy's doc/proxy-protocol.txt): the header a load balancer
// sends before the client's bytes to say who the client is.
//
// parse() is pure: no I/O and no other netloop type, so it is table-tested and fuzzed on its
// own. The listener's PROXY stage (ListenerOptions::proxy_protocol) feeds it what the socket
// holds and hands the handler the connection with the header's source as its peer address;
// a handler reads the rest (ALPN, authority, unique ID, SSL facts, custom TLVs) from
// Connection::proxy_header().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace netloop::proxy_protocol {

// v1: "PROXY TCP6 ffff:...:ffff ffff:...:ffff 65535 65535\r\n" is the longest line.
inline constexpr size_t kV1MaxLength = 107;
// v2: 12-byte signature, version and command, family and transport, 2-byte length.
inline constexpr size_t kV2FixedLength = 16;
// The whole v2 header (fixed part included) is refused past this by default (nginx's cap).
inline constexpr size_t kV2DefaultMaxLength = 4096;

enum class Command : uint8_t { local, proxy };
enum class Family : uint8_t { unspec, inet, inet6, unix_socket };
enum class Transport : uint8_t { unspec, stream, datagram };

struct Endpoint {
  std::array<uint8_t, 16> address{};  // network order; inet uses the first 4 bytes
  uint16_t port = 0;                  // host order
  std::string path;                   // unix_socket: the path (up to 108 bytes, NUL cut)
};

// PP2_TYPE_SSL and its sub-TLVs.
struct SslInfo {
  uint8_t client = 0;   // PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS bits
  uint32_t verify = 0;  // 0: the client presented a certificate that verified
  std::string version, common_name, cipher, signature_algorithm, key_algorithm;
};

struct Tlv {
  uint8_t type = 0;
  std::string value;
};

struct Header {
  uint8_t version = 0;  // 1 or 2
  Command command = Command::proxy;
  Family family = Family::unspec;        // v1 "UNKNOWN" is unspec
  Transport transport = Transport::unspec;
  Endpoint source, destination;          // meaningful for inet, inet6 and unix_socket
  // v2 TLVs (every length checked against what is left of the header).
  std::string alpn;       // PP2_TYPE_ALPN
  std::string authority;  // PP2_TYPE_AUTHORITY (the client's SNI or Host)
  std::string unique_id;  // PP2_TYPE_UNIQUE_ID (at most 128 bytes)
  std::string netns;      // PP2_TYPE_NETNS
  std::optional<SslInfo> ssl;
  bool crc32c_checked = false;  // a PP2_TYPE_CRC32C was present and matched
  // Every other TLV, in order: custom (0xE0-0xEF), experimental (0xF0-0xF7), and types this
  // parser does not know. NOOP is dropped.
  std::vector<Tlv> other_tlvs;
  size_t length = 0;  // bytes the header occupies at the start of the stream

  // The header names the real client: a PROXY command over TCP or UDP on IPv4 or IPv6.
  // Otherwise (LOCAL, UNSPEC, UNIX) the connection keeps the socket's own peer.
  bool carries_client_address() const noexcept {
    return command == Command::proxy && (family == Family::inet || family == Family::inet6);
  }
};

enum class Status : uint8_t {
  need_more,  // every byte given fits a header and belongs to it; call again with more
  done,       // `out` is filled; its first out.length bytes were the header
  invalid,    // not a valid header: close the connection
};

struct ParseResult {
  Status status = Status::need_more;
  std::string_view error{};  // invalid: why, in words (a static string)
};

struct ParseOptions {
  size_t v2_max_length = kV2DefaultMaxLength;  // whole header, fixed part included
};

// Parses the header at the start of `bytes` (the stream from its first byte). On
// need_more no byte given can belong to the protocol after the header, so a reader may
// take them all off the socket, and never reads past the header: bytes after it stay
// where they were, for TLS or the handler.
ParseResult parse(std::span<const uint8_t> bytes, Header& out, const ParseOptions& options = {});

// CRC-32C (Castagnoli), as PP2_TYPE_CRC32C carries it; `crc` continues an earlier run.
uint32_t crc32c(std::span<const uint8_t> bytes, uint32_t crc = 0) noexcept;

}  // namespace netloop::proxy_protocol
