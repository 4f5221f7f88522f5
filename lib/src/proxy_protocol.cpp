// The PROXY protocol v1/v2 parser (HAProxy's doc/proxy-protocol.txt) and CRC-32C.
//
// Every call parses from the stream's first byte, so a header given in pieces gives the
// same answer as a header given at once. Each step checks the bytes it has as soon as it
// has them: a prefix that no header can start with is invalid at once, and need_more is
// only answered while every byte seen can still belong to a valid header (the listener
// takes all of them off the socket).
//
// Where the spec leaves a choice:
// - v2 family byte: only the seven combinations the spec lists (0x00, 0x11, 0x12, 0x21,
//   0x22, 0x31, 0x32); it says other values must be rejected. LOCAL is accepted whatever
//   follows its length (the spec: "discard the protocol block including the family which
//   is ignored"): family unspec, no addresses, no TLVs read. UNSPEC under PROXY has no
//   address block: TLVs follow the 16 fixed bytes.
// - A second ALPN, AUTHORITY, CRC32C, UNIQUE_ID, SSL or NETNS TLV, or a second SSL
//   sub-TLV of one kind, makes the header invalid: a header saying two things about one
//   fact is trusted with neither. NOOP may repeat. SSL sub-TLVs without a field in SslInfo
//   (0x26 and up) are length-checked and skipped.
// - v1: port 0 is allowed (the spec's range is 0..65535); IPv6 text is whatever
//   inet_pton(AF_INET6) takes, at most 45 characters; after "UNKNOWN" comes CRLF or a
//   space and any bytes but CR and LF, then CRLF.
#include "netloop/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace netloop::proxy_protocol {
namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

constexpr ParseResult kNeedMore{Status::need_more, {}};
constexpr ParseResult invalid(std::string_view why) { return {Status::invalid, why}; }

// ---------------------------------------------------------------------------------------
// v1: one text line.

enum class Step : uint8_t { ok, more, bad };

// Reads the line through at most kV1MaxLength bytes; running out of them is need_more
// unless the 107-byte limit is what ran out.
class V1Scanner {
 public:
  explicit V1Scanner(std::span<const uint8_t> bytes)
      : in_(bytes.first(std::min(bytes.size(), kV1MaxLength))),
        capped_(bytes.size() >= kV1MaxLength) {}

  size_t position() const { return pos_; }
  std::string_view error() const { return error_; }

  Step literal(std::string_view text, std::string_view why) {
    for (char c : text) {
      if (pos_ == in_.size()) return starved();
      if (in_[pos_] != static_cast<uint8_t>(c)) return fail(why);
      ++pos_;
    }
    return Step::ok;
  }

  // "TCP4 " / "TCP6 " (family set, the space consumed) or "UNKNOWN" (family unspec).
  Step protocol(Family& family) {
    if (pos_ == in_.size()) return starved();
    if (in_[pos_] == 'U') {
      family = Family::unspec;
      return literal("UNKNOWN", "v1: unknown protocol");
    }
    if (Step s = literal("TCP", "v1: unknown protocol"); s != Step::ok) return s;
    if (pos_ == in_.size()) return starved();
    if (in_[pos_] == '4')
      family = Family::inet;
    else if (in_[pos_] == '6')
      family = Family::inet6;
    else
      return fail("v1: unknown protocol");
    ++pos_;
    return literal(" ", "v1: protocol not followed by one space");
  }

  // One more digit of a decimal written without leading zeros (an address part, a port):
  // false after a leading 0 or past `max`.
  static bool add_digit(unsigned& value, size_t& digits, uint8_t c, unsigned max) {
    if (digits == 1 && value == 0) return false;
    value = value * 10 + (c - '0');
    ++digits;
    return value <= max;
  }

  // A dotted quad: four decimal parts 0-255 without leading zeros, ended by a space (not
  // consumed).
  Step ipv4(std::array<uint8_t, 16>& address, std::string_view why) {
    size_t part = 0, digits = 0;
    unsigned value = 0;
    for (;; ++pos_) {
      if (pos_ == in_.size()) return starved();
      uint8_t c = in_[pos_];
      if (c >= '0' && c <= '9') {
        if (!add_digit(value, digits, c, 255)) return fail(why);
      } else if (c == '.' && digits > 0 && part < 3) {
        address[part++] = static_cast<uint8_t>(value);
        digits = 0;
        value = 0;
      } else if (c == ' ' && digits > 0 && part == 3) {
        address[3] = static_cast<uint8_t>(value);
        return Step::ok;
      } else {
        return fail(why);
      }
    }
  }

  // An IPv6 address in any form inet_pton takes, ended by a space (not consumed). Before
  // the space only its characters and length can be checked.
  Step ipv6(std::array<uint8_t, 16>& address, std::string_view why) {
    constexpr size_t kMaxText = 45;  // INET6_ADDRSTRLEN less its NUL
    char text[kMaxText + 1];
    size_t length = 0;
    for (;; ++pos_) {
      if (pos_ == in_.size()) return starved();
      uint8_t c = in_[pos_];
      if (c == ' ') break;
      bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!(hex || c == ':' || c == '.') || length == kMaxText) return fail(why);
      text[length++] = static_cast<char>(c);
    }
    text[length] = '\0';
    if (inet_pton(AF_INET6, text, address.data()) != 1) return fail(why);
    return Step::ok;
  }

  // Decimal 0-65535 without sign or leading zeros, ended by `terminator` (not consumed).
  Step port(uint16_t& out, uint8_t terminator, std::string_view why) {
    size_t digits = 0;
    unsigned value = 0;
    for (;; ++pos_) {
      if (pos_ == in_.size()) return starved();
      uint8_t c = in_[pos_];
      if (c >= '0' && c <= '9') {
        if (!add_digit(value, digits, c, 65535)) return fail(why);
      } else if (c == terminator && digits > 0) {
        out = static_cast<uint16_t>(value);
        return Step::ok;
      } else if (c == '\n') {
        return fail("v1: LF without CR");
      } else {
        return fail(why);
      }
    }
  }

  // After "UNKNOWN": nothing, or a space and anything, up to CRLF (consumed).
  Step rest_of_unknown_line() {
    for (size_t start = pos_;; ++pos_) {
      if (pos_ == in_.size()) return starved();
      uint8_t c = in_[pos_];
      if (c == '\r') return literal("\r\n", "v1: CR without LF");
      if (c == '\n') return fail("v1: LF without CR");
      if (pos_ == start && c != ' ') return fail("v1: unknown protocol");
    }
  }

 private:
  Step fail(std::string_view why) {
    error_ = why;
    return Step::bad;
  }
  Step starved() { return capped_ ? fail("v1: no CRLF within 107 bytes") : Step::more; }

  std::span<const uint8_t> in_;
  bool capped_;
  size_t pos_ = 0;
  std::string_view error_;
};

ParseResult parse_v1(std::span<const uint8_t> bytes, Header& out) {
  V1Scanner scan(bytes);
  out.version = 1;
  out.command = Command::proxy;
  auto steps = [&]() -> Step {
    if (Step s = scan.literal("PROXY ", "v1: not \"PROXY \""); s != Step::ok) return s;
    if (Step s = scan.protocol(out.family); s != Step::ok) return s;
    if (out.family == Family::unspec) return scan.rest_of_unknown_line();
    out.transport = Transport::stream;
    auto address = [&](Endpoint& e, std::string_view why) {
      return out.family == Family::inet ? scan.ipv4(e.address, why) : scan.ipv6(e.address, why);
    };
    Step s = address(out.source, "v1: bad source address");
    if (s == Step::ok) s = scan.literal(" ", "v1: bad source address");
    if (s == Step::ok) s = address(out.destination, "v1: bad destination address");
    if (s == Step::ok) s = scan.literal(" ", "v1: bad destination address");
    if (s == Step::ok) s = scan.port(out.source.port, ' ', "v1: bad source port");
    if (s == Step::ok) s = scan.literal(" ", "v1: bad source port");
    if (s == Step::ok) s = scan.port(out.destination.port, '\r', "v1: bad destination port");
    if (s == Step::ok) s = scan.literal("\r\n", "v1: CR without LF");
    return s;
  };
  switch (steps()) {
    case Step::ok:
      out.length = scan.position();
      return {Status::done, {}};
    case Step::more:
      return kNeedMore;
    case Step::bad:
      break;
  }
  return invalid(scan.error());
}

// ---------------------------------------------------------------------------------------
// v2: 16 fixed bytes, the address block its family needs, then TLVs.

constexpr std::array<uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

constexpr std::array<std::string_view, 16> kBadVersion = {
    "v2: version 0",  "v2: version 1",  "v2: version 2",  "v2: version 3",
    "v2: version 4",  "v2: version 5",  "v2: version 6",  "v2: version 7",
    "v2: version 8",  "v2: version 9",  "v2: version 10", "v2: version 11",
    "v2: version 12", "v2: version 13", "v2: version 14", "v2: version 15"};

enum TlvType : uint8_t {
  kAlpn = 0x01,
  kAuthority = 0x02,
  kCrc32c = 0x03,
  kNoop = 0x04,
  kUniqueId = 0x05,
  kSsl = 0x20,
  kSslVersion = 0x21,
  kSslCn = 0x22,
  kSslCipher = 0x23,
  kSslSigAlg = 0x24,
  kSslKeyAlg = 0x25,
  kNetns = 0x30,
};
constexpr size_t kMaxUniqueId = 128;
constexpr size_t kMaxAuthority = 255;  // a host name
constexpr size_t kSslFixedLength = 5;  // client u8, verify u32

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

std::string as_string(std::span<const uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// The family byte: only the seven combinations the spec lists are valid. Returns why not.
std::string_view read_family(uint8_t byte, Header& out) {
  unsigned family = byte >> 4, transport = byte & 0x0F;
  if (family > 3) return "v2: unknown address family";
  if (transport > 2) return "v2: unknown transport";
  if ((family == 0) != (transport == 0)) return "v2: transport UNSPEC goes with family UNSPEC only";
  out.family = static_cast<Family>(family);
  out.transport = static_cast<Transport>(transport);
  return {};
}

size_t address_block_size(Family family) {
  switch (family) {
    case Family::inet: return 12;
    case Family::inet6: return 36;
    case Family::unix_socket: return 216;
    case Family::unspec: break;
  }
  return 0;
}

void read_addresses(const uint8_t* p, Header& out) {
  auto unix_path = [](const uint8_t* q) {
    const void* nul = std::memchr(q, 0, 108);
    size_t n = nul ? static_cast<size_t>(static_cast<const uint8_t*>(nul) - q) : 108;
    return std::string(reinterpret_cast<const char*>(q), n);
  };
  // inet and inet6: source address, destination address (`n` bytes each), then the ports.
  auto ip = [&](size_t n) {
    std::memcpy(out.source.address.data(), p, n);
    std::memcpy(out.destination.address.data(), p + n, n);
    out.source.port = be16(p + 2 * n);
    out.destination.port = be16(p + 2 * n + 2);
  };
  switch (out.family) {
    case Family::inet:
      ip(4);
      break;
    case Family::inet6:
      ip(16);
      break;
    case Family::unix_socket:
      out.source.path = unix_path(p);
      out.destination.path = unix_path(p + 108);
      break;
    case Family::unspec:
      break;
  }
}

// Walks type-length-value records in `block`; `on_tlv(type, value)` returns an error or
// an empty view. A record must fit inside `total` bytes of which only `block` is here yet.
template <typename OnTlv>
ParseResult walk_tlvs(std::span<const uint8_t> block, size_t total, std::string_view short_header,
                      std::string_view long_value, OnTlv&& on_tlv) {
  size_t pos = 0;
  while (pos < total) {
    if (total - pos < 3) return invalid(short_header);
    if (block.size() - pos < 3) return kNeedMore;
    size_t length = be16(block.data() + pos + 1);
    if (length > total - pos - 3) return invalid(long_value);
    if (length > block.size() - pos - 3) return kNeedMore;
    if (std::string_view err = on_tlv(block[pos], block.subspan(pos + 3, length)); !err.empty())
      return invalid(err);
    pos += 3 + length;
  }
  return {Status::done, {}};
}

std::string_view read_ssl(std::span<const uint8_t> value, SslInfo& ssl) {
  if (value.size() < kSslFixedLength) return "v2: SSL TLV shorter than 5 bytes";
  ssl.client = value[0];
  ssl.verify = be32(value.data() + 1);
  auto subs = value.subspan(kSslFixedLength);
  uint32_t seen = 0;
  ParseResult r = walk_tlvs(
      subs, subs.size(), "v2: truncated SSL sub-TLV header",
      "v2: SSL sub-TLV longer than the SSL TLV",
      [&](uint8_t type, std::span<const uint8_t> v) -> std::string_view {
        std::string* field = nullptr;
        switch (type) {
          case kSslVersion: field = &ssl.version; break;
          case kSslCn: field = &ssl.common_name; break;
          case kSslCipher: field = &ssl.cipher; break;
          case kSslSigAlg: field = &ssl.signature_algorithm; break;
          case kSslKeyAlg: field = &ssl.key_algorithm; break;
          default: return {};  // no place to keep it: skipped, its length checked
        }
        uint32_t bit = 1u << (type - kSslVersion);
        if (seen & bit) return "v2: duplicate SSL sub-TLV";
        seen |= bit;
        *field = as_string(v);
        return {};
      });
  return r.status == Status::invalid ? r.error : std::string_view{};
}

ParseResult parse_v2(std::span<const uint8_t> bytes, Header& out, const ParseOptions& options) {
  size_t fixed = std::min(bytes.size(), kV2FixedLength);
  for (size_t i = 0; i < std::min(fixed, kV2Signature.size()); ++i)
    if (bytes[i] != kV2Signature[i]) return invalid("v2: bad signature");
  out.version = 2;
  if (fixed > 12) {
    unsigned version = bytes[12] >> 4, command = bytes[12] & 0x0F;
    if (version != 2) return invalid(kBadVersion[version]);
    if (command > 1) return invalid("v2: command neither LOCAL nor PROXY");
    out.command = command == 0 ? Command::local : Command::proxy;
  }
  if (fixed > 12 && out.command == Command::local) {
    // The proxy's own connection (a health check): the spec says to accept it and discard
    // the protocol block, family included, so nothing after the length is read.
    if (fixed < kV2FixedLength) return kNeedMore;
    size_t total = kV2FixedLength + be16(bytes.data() + 14);
    if (total > options.v2_max_length) return invalid("v2: header longer than the limit");
    if (bytes.size() < total) return kNeedMore;
    out.length = total;
    return {Status::done, {}};
  }
  if (fixed > 13) {
    if (std::string_view err = read_family(bytes[13], out); !err.empty()) return invalid(err);
  }
  if (fixed < kV2FixedLength) return kNeedMore;

  size_t total = kV2FixedLength + be16(bytes.data() + 14);
  if (total > options.v2_max_length) return invalid("v2: header longer than the limit");
  size_t addresses = address_block_size(out.family);
  if (total - kV2FixedLength < addresses)
    return invalid("v2: address block shorter than its family needs");
  auto header = bytes.first(std::min(bytes.size(), total));
  if (header.size() < kV2FixedLength + addresses) return kNeedMore;
  read_addresses(header.data() + kV2FixedLength, out);

  size_t tlv_start = kV2FixedLength + addresses;
  uint32_t seen = 0;  // bit per singleton TLV type already met
  size_t crc_offset = 0;
  ParseResult r = walk_tlvs(
      header.subspan(tlv_start), total - tlv_start, "v2: truncated TLV header",
      "v2: TLV longer than the header",
      [&](uint8_t type, std::span<const uint8_t> v) -> std::string_view {
        std::string* field = nullptr;
        uint32_t bit = 0;
        switch (type) {
          case kNoop: return {};
          case kAlpn: field = &out.alpn; bit = 1; break;
          case kAuthority:  // a host name (HAProxy caps it likewise)
            if (v.size() > kMaxAuthority) return "v2: AUTHORITY longer than 255 bytes";
            field = &out.authority;
            bit = 2;
            break;
          case kUniqueId:
            if (v.size() > kMaxUniqueId) return "v2: UNIQUE_ID longer than 128 bytes";
            field = &out.unique_id;
            bit = 4;
            break;
          case kNetns: field = &out.netns; bit = 8; break;
          case kCrc32c:
            if (v.size() != 4) return "v2: CRC32C TLV not 4 bytes";
            bit = 16;
            break;
          case kSsl: bit = 32; break;
          default: out.other_tlvs.push_back(Tlv{type, as_string(v)}); return {};
        }
        // A second one of these is invalid (see the top of the file).
        if (seen & bit) return "v2: duplicate TLV";
        seen |= bit;
        if (field) {
          *field = as_string(v);
        } else if (type == kCrc32c) {
          crc_offset = static_cast<size_t>(v.data() - bytes.data());
        } else {
          out.ssl.emplace();
          return read_ssl(v, *out.ssl);
        }
        return {};
      });
  if (r.status != Status::done) return r;

  if (crc_offset != 0) {
    constexpr std::array<uint8_t, 4> zeros{};
    uint32_t crc = crc32c(header.first(crc_offset));
    crc = crc32c(zeros, crc);
    crc = crc32c(header.subspan(crc_offset + 4), crc);
    if (crc != be32(header.data() + crc_offset)) return invalid("v2: CRC32C mismatch");
    out.crc32c_checked = true;
  }
  out.length = total;
  return {Status::done, {}};
}

}  // namespace

ParseResult parse(std::span<const uint8_t> bytes, Header& out, const ParseOptions& options) {
  out = Header{};
  if (bytes.empty()) return kNeedMore;
  ParseResult r;
  if (bytes[0] == 'P')
    r = parse_v1(bytes, out);
  else if (bytes[0] == kV2Signature[0])
    r = parse_v2(bytes, out, options);
  else
    r = invalid("neither a PROXY v1 nor a v2 header");
  if (r.status != Status::done) out = Header{};  // nothing half-filled for the caller
  return r;
}

uint32_t crc32c(std::span<const uint8_t> bytes, uint32_t crc) noexcept {
  uint32_t c = ~crc;
  for (uint8_t b : bytes) c = kCrc32cTable[(c ^ b) & 0xFF] ^ (c >> 8);
  return ~c;
}

}  // namespace netloop::proxy_protocol
