// Unit tests for the PROXY protocol parser (lib/src/proxy_protocol.cpp): one table of valid
// headers and one of invalid ones, as raw bytes. Each valid header is parsed whole, at every
// proper prefix (need_more), growing one byte at a time through one reused Header, and with
// payload after it. Each invalid one must become invalid at a stated byte and stay so.
// Every input ends exactly where a PROT_NONE page begins (the picohttpparser trick), so a
// read past the end is a crash, not a silent pass.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "netloop/proxy_protocol.hpp"

using namespace std::string_literals;
using namespace netloop::proxy_protocol;

namespace {

using Bytes = std::vector<uint8_t>;

std::string_view st(Status s) {
  switch (s) {
    case Status::need_more: return "need_more";
    case Status::done: return "done";
    case Status::invalid: return "invalid";
  }
  return "?";
}

// Readable pages followed by one PROT_NONE page; place() puts bytes so that they end at it.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t capacity) {
    page_ = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    data_bytes_ = std::max(page_, (capacity + page_ - 1) / page_ * page_);
    void* p = ::mmap(nullptr, data_bytes_ + page_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    base_ = static_cast<uint8_t*>(p);
    REQUIRE(::mprotect(base_ + data_bytes_, page_, PROT_NONE) == 0);
  }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  ~GuardedBuffer() { ::munmap(base_, data_bytes_ + page_); }

  std::span<const uint8_t> place(std::span<const uint8_t> bytes) {
    REQUIRE(bytes.size() <= data_bytes_);
    uint8_t* start = base_ + data_bytes_ - bytes.size();
    if (!bytes.empty()) std::memcpy(start, bytes.data(), bytes.size());
    return {start, bytes.size()};
  }

 private:
  size_t page_ = 0, data_bytes_ = 0;
  uint8_t* base_ = nullptr;
};

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes repeat(uint8_t byte, size_t n) { return Bytes(n, byte); }

const Bytes kSignature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// A v2 header: signature, version/command, family/transport, the body's length, the body.
Bytes v2(uint8_t ver_cmd, uint8_t fam, const Bytes& body) {
  Bytes h = kSignature;
  h.push_back(ver_cmd);
  h.push_back(fam);
  h.push_back(static_cast<uint8_t>(body.size() >> 8));
  h.push_back(static_cast<uint8_t>(body.size()));
  return h + body;
}

// The 16 fixed bytes only, with a length field that need not match what follows.
Bytes v2_fixed(uint8_t ver_cmd, uint8_t fam, uint16_t length) {
  Bytes h = kSignature;
  h.insert(h.end(), {ver_cmd, fam, static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length)});
  return h;
}

Bytes tlv(uint8_t type, const Bytes& value) {
  Bytes t = {type, static_cast<uint8_t>(value.size() >> 8), static_cast<uint8_t>(value.size())};
  return t + value;
}

Bytes u32be(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// Appends a CRC32C TLV to a complete v2 header and fills it in (length field updated).
Bytes with_crc(Bytes h, uint32_t flip = 0) {
  h = h + tlv(0x03, u32be(0));
  size_t body = h.size() - 16;
  h[14] = static_cast<uint8_t>(body >> 8);
  h[15] = static_cast<uint8_t>(body);
  uint32_t crc = crc32c(h) ^ flip;
  Bytes value = u32be(crc);
  std::copy(value.begin(), value.end(), h.end() - 4);
  return h;
}

const Bytes kInetAddresses = {192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB};  // :56324 :443

std::array<uint8_t, 16> ip(std::initializer_list<uint8_t> bytes) {
  std::array<uint8_t, 16> a{};
  std::copy(bytes.begin(), bytes.end(), a.begin());
  return a;
}

std::string unix_path_field(std::string_view path) {
  std::string f(path);
  f.resize(108, '\0');
  return f;
}

void check_same(const Header& a, const Header& b) {
  CHECK(a.version == b.version);
  CHECK(a.command == b.command);
  CHECK(a.family == b.family);
  CHECK(a.transport == b.transport);
  CHECK(a.source.address == b.source.address);
  CHECK(a.source.port == b.source.port);
  CHECK(a.source.path == b.source.path);
  CHECK(a.destination.address == b.destination.address);
  CHECK(a.destination.port == b.destination.port);
  CHECK(a.destination.path == b.destination.path);
  CHECK(a.alpn == b.alpn);
  CHECK(a.authority == b.authority);
  CHECK(a.unique_id == b.unique_id);
  CHECK(a.netns == b.netns);
  REQUIRE(a.ssl.has_value() == b.ssl.has_value());
  if (a.ssl) {
    CHECK(a.ssl->client == b.ssl->client);
    CHECK(a.ssl->verify == b.ssl->verify);
    CHECK(a.ssl->version == b.ssl->version);
    CHECK(a.ssl->common_name == b.ssl->common_name);
    CHECK(a.ssl->cipher == b.ssl->cipher);
    CHECK(a.ssl->signature_algorithm == b.ssl->signature_algorithm);
    CHECK(a.ssl->key_algorithm == b.ssl->key_algorithm);
  }
  CHECK(a.crc32c_checked == b.crc32c_checked);
  REQUIRE(a.other_tlvs.size() == b.other_tlvs.size());
  for (size_t i = 0; i < a.other_tlvs.size(); ++i) {
    CHECK(a.other_tlvs[i].type == b.other_tlvs[i].type);
    CHECK(a.other_tlvs[i].value == b.other_tlvs[i].value);
  }
  CHECK(a.length == b.length);
}

// A Header full of leftovers, as a reused one would be.
Header junk_header() {
  Header h;
  h.version = 9;
  h.family = Family::unix_socket;
  h.source.path = "stale";
  h.alpn = "stale";
  h.ssl.emplace();
  h.crc32c_checked = true;
  h.other_tlvs.push_back({0xE0, "stale"});
  h.length = 77;
  return h;
}

bool is_reset(const Header& h) {
  return h.version == 0 && h.length == 0 && h.other_tlvs.empty() && h.alpn.empty() &&
         !h.ssl && !h.crc32c_checked && h.source.path.empty();
}

struct ValidCase {
  const char* name;
  Bytes input;
  Header expect;  // length is taken from input.size()
  ParseOptions options{};
};

struct InvalidCase {
  const char* name;
  Bytes input;
  size_t invalid_at;  // the shortest prefix that is invalid
  std::string_view error;
  ParseOptions options{};
};

Header v1_header(Family family) {
  Header h;
  h.version = 1;
  h.family = family;
  h.transport = family == Family::unspec ? Transport::unspec : Transport::stream;
  return h;
}

Header v2_header(Command command, Family family, Transport transport) {
  Header h;
  h.version = 2;
  h.command = command;
  h.family = family;
  h.transport = transport;
  return h;
}

std::vector<ValidCase> valid_cases() {
  std::vector<ValidCase> cases;
  {
    Header h = v1_header(Family::inet);
    h.source.address = ip({192, 168, 0, 1});
    h.destination.address = ip({10, 0, 0, 2});
    h.source.port = 56324;
    h.destination.port = 443;
    cases.push_back({"v1 TCP4", text("PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n"), h});
  }
  {
    Header h = v1_header(Family::inet);
    h.destination.address = ip({255, 255, 255, 255});
    h.source.port = 0;
    h.destination.port = 65535;
    cases.push_back({"v1 TCP4 extremes", text("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), h});
  }
  {
    Header h = v1_header(Family::inet6);
    h.source.address = ip({0x20, 0x01, 0x0d, 0xb8});
    h.source.address[15] = 1;
    h.destination.address[15] = 1;
    h.source.port = 1;
    h.destination.port = 8443;
    cases.push_back({"v1 TCP6", text("PROXY TCP6 2001:DB8::1 ::1 1 8443\r\n"), h});
  }
  {
    Header h = v1_header(Family::inet6);
    h.source.address.fill(0xFF);
    h.destination.address = ip({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4});
    h.source.port = 65535;
    h.destination.port = 65535;
    cases.push_back({"v1 TCP6 longest address, mapped IPv4",
                     text("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ::ffff:1.2.3.4 "
                          "65535 65535\r\n"),
                     h});
  }
  cases.push_back({"v1 UNKNOWN", text("PROXY UNKNOWN\r\n"), v1_header(Family::unspec)});
  {
    std::string line = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    REQUIRE(line.size() == kV1MaxLength);
    cases.push_back({"v1 UNKNOWN of 107 bytes", text(line), v1_header(Family::unspec)});
  }
  cases.push_back({"v1 UNKNOWN with anything", text("PROXY UNKNOWN \x01\xff what\tever \r\n"s),
                   v1_header(Family::unspec)});
  {
    Header h = v2_header(Command::proxy, Family::inet, Transport::stream);
    h.source.address = ip({192, 0, 2, 1});
    h.destination.address = ip({198, 51, 100, 7});
    h.source.port = 56324;
    h.destination.port = 443;
    cases.push_back({"v2 PROXY TCP4", v2(0x21, 0x11, kInetAddresses), h});
  }
  {
    Bytes addresses = repeat(0, 36);
    addresses[0] = 0x20;
    addresses[15] = 0x01;
    addresses[31] = 0x02;
    addresses[32] = 0x30;
    addresses[33] = 0x39;
    addresses[35] = 0x35;
    Bytes unique = repeat('u', 128);
    Bytes body = addresses + tlv(0x04, text("pad")) + tlv(0x01, text("h2")) +
                 tlv(0xE0, text("custom")) + tlv(0x02, text("example.com")) +
                 tlv(0x05, unique) + tlv(0xF1, {}) + tlv(0x99, {1, 2, 3}) +
                 tlv(0x30, text("blue")) + tlv(0x04, {});
    Header h = v2_header(Command::proxy, Family::inet6, Transport::datagram);
    h.source.address = ip({0x20});
    h.source.address[15] = 1;
    h.destination.address[15] = 2;
    h.source.port = 12345;
    h.destination.port = 53;
    h.alpn = "h2";
    h.authority = "example.com";
    h.unique_id = std::string(128, 'u');
    h.netns = "blue";
    h.crc32c_checked = true;
    h.other_tlvs = {{0xE0, "custom"}, {0xF1, ""}, {0x99, "\x01\x02\x03"}};
    cases.push_back({"v2 PROXY UDP6, TLVs, CRC32C", with_crc(v2(0x21, 0x22, body)), h});
  }
  {
    std::string src = unix_path_field("/run/client.sock");
    std::string dst(108, 'd');  // no NUL: all 108 bytes
    Bytes body = text(src) + text(dst);
    Header h = v2_header(Command::proxy, Family::unix_socket, Transport::stream);
    h.source.path = "/run/client.sock";
    h.destination.path = dst;
    cases.push_back({"v2 PROXY UNIX stream", v2(0x21, 0x31, body), h});
  }
  {
    Header h = v2_header(Command::proxy, Family::unix_socket, Transport::datagram);
    h.alpn = "";
    h.crc32c_checked = true;
    cases.push_back({"v2 UNIX dgram, empty paths, empty ALPN, CRC32C",
                     with_crc(v2(0x21, 0x32, repeat(0, 216) + tlv(0x01, {}))), h});
  }
  cases.push_back({"v2 LOCAL", v2(0x20, 0x00, {}),
                   v2_header(Command::local, Family::unspec, Transport::unspec)});
  // LOCAL: the spec says to discard the protocol block, family included; nothing in it is
  // read (a bad CRC or a family byte no PROXY header may carry does not matter).
  cases.push_back({"v2 LOCAL: addresses and a CRC32C discarded",
                   with_crc(v2(0x20, 0x11, kInetAddresses)),
                   v2_header(Command::local, Family::unspec, Transport::unspec)});
  cases.push_back({"v2 LOCAL: INET family and no address block",
                   v2(0x20, 0x11, {}), v2_header(Command::local, Family::unspec, Transport::unspec)});
  cases.push_back({"v2 LOCAL: an unknown family byte", v2(0x20, 0xFF, text("junk")),
                   v2_header(Command::local, Family::unspec, Transport::unspec)});
  {
    Header h = v2_header(Command::proxy, Family::unspec, Transport::unspec);
    h.authority = "a";
    cases.push_back({"v2 PROXY UNSPEC with a TLV", v2(0x21, 0x00, tlv(0x02, text("a"))), h});
  }
  {
    Header h = v2_header(Command::proxy, Family::unspec, Transport::unspec);
    h.authority = std::string(255, 'a');
    cases.push_back({"v2 AUTHORITY of 255 bytes", v2(0x21, 0x00, tlv(0x02, repeat('a', 255))), h});
  }
  {
    Bytes ssl = Bytes{0x07} + u32be(0x01020304) + tlv(0x21, text("TLSv1.3")) +
                tlv(0x22, text("client")) + tlv(0x23, text("TLS_AES_128_GCM_SHA256")) +
                tlv(0x24, text("SHA256")) + tlv(0x25, text("RSA2048")) + tlv(0x2F, text("?"));
    Header h = v2_header(Command::proxy, Family::inet, Transport::stream);
    h.source.address = ip({192, 0, 2, 1});
    h.destination.address = ip({198, 51, 100, 7});
    h.source.port = 56324;
    h.destination.port = 443;
    h.ssl.emplace();
    h.ssl->client = 7;
    h.ssl->verify = 0x01020304;
    h.ssl->version = "TLSv1.3";
    h.ssl->common_name = "client";
    h.ssl->cipher = "TLS_AES_128_GCM_SHA256";
    h.ssl->signature_algorithm = "SHA256";
    h.ssl->key_algorithm = "RSA2048";
    h.crc32c_checked = true;
    cases.push_back(
        {"v2 SSL with sub-TLVs", with_crc(v2(0x21, 0x11, kInetAddresses + tlv(0x20, ssl))), h});
  }
  {
    Header h = v2_header(Command::proxy, Family::unspec, Transport::unspec);
    h.ssl.emplace();
    cases.push_back({"v2 SSL without sub-TLVs", v2(0x21, 0x00, tlv(0x20, repeat(0, 5))), h});
  }
  {
    // Exactly at a small cap: 16 + 12 + 3 + 33 = 64.
    Header h = v2_header(Command::proxy, Family::inet, Transport::stream);
    h.source.address = ip({192, 0, 2, 1});
    h.destination.address = ip({198, 51, 100, 7});
    h.source.port = 56324;
    h.destination.port = 443;
    h.other_tlvs = {{0xEE, std::string(33, 'x')}};
    ParseOptions small;
    small.v2_max_length = 64;
    cases.push_back({"v2 at a 64-byte cap", v2(0x21, 0x11, kInetAddresses + tlv(0xEE, repeat('x', 33))),
                     h, small});
  }
  {
    // Exactly at the default cap.
    Header h = v2_header(Command::proxy, Family::unspec, Transport::unspec);
    h.other_tlvs = {{0xE5, std::string(kV2DefaultMaxLength - 16 - 3, 'z')}};
    cases.push_back({"v2 at the default cap",
                     v2(0x21, 0x00, tlv(0xE5, repeat('z', kV2DefaultMaxLength - 16 - 3))), h});
  }
  return cases;
}

std::vector<InvalidCase> invalid_cases() {
  const Bytes inet = kInetAddresses;
  ParseOptions small;
  small.v2_max_length = 62;
  std::vector<InvalidCase> c = {
      {"neither v1 nor v2", text("GET / HTTP/1.1\r\n"), 1, "neither a PROXY v1 nor a v2 header"},
      {"v1 lowercase proxy", text("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), 1,
       "neither a PROXY v1 nor a v2 header"},
      {"v1 PROXZ", text("PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), 5, "v1: not \"PROXY \""},
      {"v1 two spaces after PROXY", text("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), 7,
       "v1: unknown protocol"},
      {"v1 TCP5", text("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), 10, "v1: unknown protocol"},
      {"v1 UNKNOWNX", text("PROXY UNKNOWNX\r\n"), 14, "v1: unknown protocol"},
      {"v1 two spaces after TCP4", text("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), 12,
       "v1: bad source address"},
      {"v1 two spaces between addresses", text("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), 20,
       "v1: bad destination address"},
      {"v1 two spaces between ports", text("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n"), 30,
       "v1: bad destination port"},
      {"v1 999.1.1.1", text("PROXY TCP4 999.1.1.1 5.6.7.8 1 2\r\n"), 14, "v1: bad source address"},
      {"v1 1.2.3", text("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), 17, "v1: bad source address"},
      {"v1 1.2.3.4.5", text("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"), 19, "v1: bad source address"},
      {"v1 leading zero in address", text("PROXY TCP4 1.2.3.4 5.06.7.8 1 2\r\n"), 23,
       "v1: bad destination address"},
      {"v1 empty address part", text("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n"), 14,
       "v1: bad source address"},
      {"v1 TCP4 with IPv6", text("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), 12, "v1: bad source address"},
      {"v1 TCP6 with IPv4", text("PROXY TCP6 ::1 5.6.7.8 1 2\r\n"), 23,
       "v1: bad destination address"},
      {"v1 TCP6 bad IPv6", text("PROXY TCP6 1:::2 ::1 1 2\r\n"), 17, "v1: bad source address"},
      {"v1 TCP6 address too long", text("PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0000:000000 ::1 1 2\r\n"),
       57, "v1: bad source address"},
      {"v1 port 65536", text("PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n"), 32, "v1: bad source port"},
      {"v1 port 99999 ", text("PROXY TCP4 1.2.3.4 5.6.7.8 80 99999\r\n"), 35,
       "v1: bad destination port"},
      {"v1 port with leading zero", text("PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n"), 29,
       "v1: bad source port"},
      {"v1 port with sign", text("PROXY TCP4 1.2.3.4 5.6.7.8 +80 80\r\n"), 28, "v1: bad source port"},
      {"v1 space before CRLF", text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), 31,
       "v1: bad destination port"},
      {"v1 LF only", text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), 31, "v1: LF without CR"},
      {"v1 UNKNOWN LF only", text("PROXY UNKNOWN\n"), 14, "v1: LF without CR"},
      {"v1 UNKNOWN LF inside", text("PROXY UNKNOWN a\nb\r\n"), 16, "v1: LF without CR"},
      {"v1 CR without LF", text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), 32, "v1: CR without LF"},
      {"v1 UNKNOWN CR without LF", text("PROXY UNKNOWN \r\r\n"), 16, "v1: CR without LF"},
      {"v1 no CRLF in 107 bytes", text("PROXY UNKNOWN " + std::string(93, 'a') + "\r\n"), 107,
       "v1: no CRLF within 107 bytes"},
      {"v1 CRLF one byte late", text("PROXY UNKNOWN " + std::string(92, 'a') + "\r\n"), 107,
       "v1: no CRLF within 107 bytes"},
      {"v2 bad signature byte", text("\x0D\x0A\x0D\x0A\x00\x0A"s), 6, "v2: bad signature"},
      {"v2 signature then v1", text("\x0D\x0APROXY TCP4"), 3, "v2: bad signature"},
      {"v2 version 3", v2(0x31, 0x11, inet), 13, "v2: version 3"},
      {"v2 version 1", v2(0x11, 0x11, inet), 13, "v2: version 1"},
      {"v2 command 2", v2(0x22, 0x11, inet), 13, "v2: command neither LOCAL nor PROXY"},
      {"v2 family 4", v2(0x21, 0x41, inet), 14, "v2: unknown address family"},
      {"v2 transport 3", v2(0x21, 0x13, inet), 14, "v2: unknown transport"},
      {"v2 INET with transport UNSPEC", v2(0x21, 0x10, inet), 14,
       "v2: transport UNSPEC goes with family UNSPEC only"},
      {"v2 UNSPEC with transport STREAM", v2(0x21, 0x01, {}), 14,
       "v2: transport UNSPEC goes with family UNSPEC only"},
      {"v2 length past the cap (fixed bytes only)", v2_fixed(0x21, 0x11, 4096 - 16 + 1), 16,
       "v2: header longer than the limit"},
      {"v2 length 65535", v2_fixed(0x21, 0x00, 0xFFFF), 16, "v2: header longer than the limit"},
      {"v2 length past a small cap", v2(0x21, 0x11, inet + tlv(0xEE, repeat('x', 32))), 16,
       "v2: header longer than the limit", small},
      {"v2 INET block too short", v2(0x21, 0x11, repeat(0, 11)), 16,
       "v2: address block shorter than its family needs"},
      {"v2 INET6 with an INET block", v2(0x21, 0x21, inet), 16,
       "v2: address block shorter than its family needs"},
      {"v2 UNIX block too short", v2(0x21, 0x31, repeat(0, 215)), 16,
       "v2: address block shorter than its family needs"},
      {"v2 TLV longer than the header", v2(0x21, 0x11, inet + Bytes{0xE0, 0x00, 0x05, 'a', 'b'}),
       31, "v2: TLV longer than the header"},
      {"v2 TLV longer by one", v2(0x21, 0x11, inet + tlv(0x01, text("h2")) + Bytes{0xE0, 0, 3, 1, 2}),
       36, "v2: TLV longer than the header"},
      {"v2 2-byte TLV fragment", v2(0x21, 0x11, inet + Bytes{0x01, 0x00}), 28,
       "v2: truncated TLV header"},
      {"v2 1-byte TLV fragment after a TLV", v2(0x21, 0x00, tlv(0x02, text("x")) + Bytes{0x04}), 20,
       "v2: truncated TLV header"},
      {"v2 bad CRC32C", with_crc(v2(0x21, 0x11, inet + tlv(0x01, text("h2"))), 1), 40,
       "v2: CRC32C mismatch"},
      {"v2 CRC32C of 3 bytes", v2(0x21, 0x11, inet + tlv(0x03, {1, 2, 3})), 34,
       "v2: CRC32C TLV not 4 bytes"},
      {"v2 UNIQUE_ID of 129 bytes", v2(0x21, 0x11, inet + tlv(0x05, repeat('u', 129))), 160,
       "v2: UNIQUE_ID longer than 128 bytes"},
      {"v2 AUTHORITY of 256 bytes", v2(0x21, 0x11, inet + tlv(0x02, repeat('a', 256))), 287,
       "v2: AUTHORITY longer than 255 bytes"},
      {"v2 SSL shorter than 5 bytes", v2(0x21, 0x11, inet + tlv(0x20, {1, 0, 0, 0})), 35,
       "v2: SSL TLV shorter than 5 bytes"},
      {"v2 SSL sub-TLV overrunning",
       v2(0x21, 0x11, inet + tlv(0x20, Bytes{1, 0, 0, 0, 0} + Bytes{0x21, 0x00, 0x0A, 'T', 'L', 'S'})),
       42, "v2: SSL sub-TLV longer than the SSL TLV"},
      {"v2 SSL truncated sub-TLV header",
       v2(0x21, 0x11, inet + tlv(0x20, Bytes{1, 0, 0, 0, 0} + tlv(0x22, text("cn")) + Bytes{0x23})),
       42, "v2: truncated SSL sub-TLV header"},
      {"v2 duplicate ALPN", v2(0x21, 0x11, inet + tlv(0x01, text("h2")) + tlv(0x01, text("h3"))),
       38, "v2: duplicate TLV"},
      {"v2 duplicate CRC32C", with_crc(v2(0x21, 0x00, tlv(0x03, u32be(0)))), 30,
       "v2: duplicate TLV"},
      {"v2 duplicate SSL sub-TLV",
       v2(0x21, 0x00, tlv(0x20, Bytes{0, 0, 0, 0, 0} + tlv(0x22, text("a")) + tlv(0x22, text("b")))),
       32, "v2: duplicate SSL sub-TLV"},
  };
  return c;
}

void check_valid(const ValidCase& c) {
  CAPTURE(c.name);
  Header expect = c.expect;
  expect.length = c.input.size();
  GuardedBuffer guard(2 * c.input.size() + 64);

  Header out = junk_header();
  ParseResult whole = parse(guard.place(c.input), out, c.options);
  REQUIRE_MESSAGE(whole.status == Status::done, st(whole.status), " ", whole.error);
  CHECK(whole.error.empty());
  check_same(out, expect);

  // One byte at a time through one Header: need_more (and nothing kept) until the last.
  Header grown = junk_header();
  for (size_t n = 0; n < c.input.size(); ++n) {
    ParseResult r = parse(guard.place(std::span(c.input).first(n)), grown, c.options);
    CAPTURE(n);
    REQUIRE_MESSAGE(r.status == Status::need_more, st(r.status), " ", r.error);
    REQUIRE(is_reset(grown));
  }
  REQUIRE(parse(guard.place(c.input), grown, c.options).status == Status::done);
  check_same(grown, expect);

  // Payload after the header is not the header's.
  for (const Bytes& payload : {text("GET / HTTP/1.1\r\n"), text("\r\n"), Bytes{0}, c.input}) {
    Header after;
    ParseResult r = parse(guard.place(c.input + payload), after, c.options);
    REQUIRE(r.status == Status::done);
    check_same(after, expect);
  }
}

void check_invalid(const InvalidCase& c) {
  CAPTURE(c.name);
  GuardedBuffer guard(c.input.size() + 16);
  Header out = junk_header();
  ParseResult whole = parse(guard.place(c.input), out, c.options);
  REQUIRE_MESSAGE(whole.status == Status::invalid, st(whole.status));
  CHECK(whole.error == c.error);
  CHECK(is_reset(out));
  // need_more up to invalid_at, then invalid with the same reason for every longer prefix.
  for (size_t n = 0; n <= c.input.size(); ++n) {
    Header h = junk_header();
    ParseResult r = parse(guard.place(std::span(c.input).first(n)), h, c.options);
    CAPTURE(n);
    if (n < c.invalid_at) {
      REQUIRE_MESSAGE(r.status == Status::need_more, st(r.status), " ", r.error);
    } else {
      REQUIRE(r.status == Status::invalid);
      REQUIRE(r.error == c.error);
    }
    CHECK(is_reset(h));
  }
}

}  // namespace

TEST_CASE("crc32c: known answers") {
  Bytes digits = text("123456789");
  CHECK(crc32c(digits) == 0xE3069283u);
  CHECK(crc32c({}) == 0u);
  // Continuing a run gives the same as one run.
  CHECK(crc32c(std::span(digits).subspan(4), crc32c(std::span(digits).first(4))) == 0xE3069283u);
  // RFC 3720 B.4: 32 bytes of zeros.
  CHECK(crc32c(repeat(0, 32)) == 0x8A9136AAu);
}

TEST_CASE("proxy_protocol: valid headers, whole, byte by byte and with payload") {
  for (const ValidCase& c : valid_cases()) check_valid(c);
}

TEST_CASE("proxy_protocol: invalid headers, and the byte where each becomes invalid") {
  for (const InvalidCase& c : invalid_cases()) check_invalid(c);
}

TEST_CASE("proxy_protocol: nothing yet is need_more") {
  Header h = junk_header();
  CHECK(parse({}, h).status == Status::need_more);
  CHECK(is_reset(h));
}

TEST_CASE("proxy_protocol: who the connection is from") {
  auto parsed = [](const Bytes& input) {
    Header h;
    REQUIRE(parse(input, h).status == Status::done);
    return h;
  };
  CHECK(parsed(text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")).carries_client_address());
  CHECK(parsed(text("PROXY TCP6 ::1 ::2 1 2\r\n")).carries_client_address());
  CHECK_FALSE(parsed(text("PROXY UNKNOWN\r\n")).carries_client_address());
  CHECK(parsed(v2(0x21, 0x11, kInetAddresses)).carries_client_address());
  CHECK(parsed(v2(0x21, 0x12, kInetAddresses)).carries_client_address());
  CHECK(parsed(v2(0x21, 0x21, repeat(1, 36))).carries_client_address());
  CHECK_FALSE(parsed(v2(0x20, 0x11, kInetAddresses)).carries_client_address());  // LOCAL
  CHECK_FALSE(parsed(v2(0x21, 0x31, repeat(0, 216))).carries_client_address());  // UNIX
  CHECK_FALSE(parsed(v2(0x21, 0x00, {})).carries_client_address());              // UNSPEC
}

TEST_CASE("proxy_protocol: a reused Header keeps nothing of an earlier parse") {
  Header h;
  REQUIRE(parse(with_crc(v2(0x21, 0x11, kInetAddresses + tlv(0xE0, text("x")) +
                                           tlv(0x01, text("h2")))),
                h)
              .status == Status::done);
  REQUIRE(h.other_tlvs.size() == 1);
  REQUIRE(h.crc32c_checked);
  REQUIRE(parse(text("PROXY UNKNOWN\r\n"), h).status == Status::done);
  CHECK(h.other_tlvs.empty());
  CHECK(h.alpn.empty());
  CHECK_FALSE(h.crc32c_checked);
  CHECK(h.version == 1);
  CHECK(h.length == 15);
}
