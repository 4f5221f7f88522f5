// Unit tests for Address (lib/src/address.cpp): parse tables (good and bad input, with
// the message), printing round trips, from_sockaddr, equality and the loopback helpers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netloop/address.hpp"

using netloop::Address;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return lower(haystack).find(lower(std::string(needle))) != std::string::npos;
}

struct Good {
  const char* text;
  int family;
  const char* host;
  uint16_t port;
  const char* printed;
};

const Good kGood[] = {
    {"127.0.0.1:80", AF_INET, "127.0.0.1", 80, "127.0.0.1:80"},
    {"[::1]:8080", AF_INET6, "::1", 8080, "[::1]:8080"},
    {"localhost:7", AF_INET, "127.0.0.1", 7, "127.0.0.1:7"},
    {"0.0.0.0:0", AF_INET, "0.0.0.0", 0, "0.0.0.0:0"},
    {"255.255.255.255:65535", AF_INET, "255.255.255.255", 65535, "255.255.255.255:65535"},
    {"10.0.0.1:0080", AF_INET, "10.0.0.1", 80, "10.0.0.1:80"},
    {"[::]:0", AF_INET6, "::", 0, "[::]:0"},
    {"[2001:db8::1]:443", AF_INET6, "2001:db8::1", 443, "[2001:db8::1]:443"},
    {"[2001:DB8:0:0:0:0:0:2]:1", AF_INET6, "2001:db8::2", 1, "[2001:db8::2]:1"},
    {"[::ffff:127.0.0.1]:9", AF_INET6, "::ffff:127.0.0.1", 9, "[::ffff:127.0.0.1]:9"},
};

struct Bad {
  const char* text;
  // Each message must name what is wrong: every one of these must appear in it
  // (case-insensitive).
  std::vector<const char*> says;
};

const Bad kBad[] = {
    {"", {"host", "port"}},
    {"1.2.3:4", {"1.2.3", "ipv4"}},
    {"::1:80", {"bracket"}},
    {"fe80::1", {"bracket"}},
    {"[::1]80", {"port"}},
    {"[::1]", {"port"}},
    {"[::1", {"]"}},
    {"host:", {"missing port"}},
    {"[::1]:", {"missing port"}},
    {":80", {"missing host"}},
    {"[]:80", {"missing host"}},
    {"1.2.3.4:65536", {"65536", "range"}},
    {"1.2.3.4:70000", {"70000", "range"}},
    {"1.2.3.4:-1", {"-1", "port"}},
    {"1.2.3.4:8x", {"8x", "port"}},
    {"1.2.3.4: 80", {"port"}},
    {"1.2.3.4:+80", {"+80", "port"}},
    {"1.2.3.4", {"port"}},
    {"example.com:80", {"example.com"}},
    {"256.1.1.1:80", {"256.1.1.1"}},
    {"[127.0.0.1]:80", {"127.0.0.1", "ipv6"}},
    {"[::g]:80", {"::g", "ipv6"}},
};

}  // namespace

TEST_CASE("address: parse accepts numeric IPv4, bracketed IPv6 and localhost") {
  for (const auto& g : kGood) {
    CAPTURE(g.text);
    std::string why;
    auto r = Address::parse_numeric(g.text, &why);
    INFO("why: " << why);
    REQUIRE(r.ok());
    CHECK_FALSE(bool(r.error()));
    const Address& a = *r;
    CHECK(a.family() == g.family);
    CHECK(a.is_ipv6() == (g.family == AF_INET6));
    CHECK(a.host() == g.host);
    CHECK(a.port() == g.port);
    CHECK(a.to_string() == g.printed);
    CHECK(a.length() == (g.family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)));
    CHECK(a.sockaddr_ptr()->sa_family == g.family);

    // The same without a `why`.
    auto r2 = Address::parse_numeric(g.text);
    REQUIRE(r2.ok());
    CHECK(*r2 == a);
  }
}

TEST_CASE("address: parse rejects bad input with a message that says what is wrong") {
  for (const auto& b : kBad) {
    CAPTURE(b.text);
    std::string why;
    auto r = Address::parse_numeric(b.text, &why);
    INFO("why: " << why);
    CHECK_FALSE(r.ok());
    CHECK(bool(r.error()));
    CHECK_FALSE(why.empty());
    CHECK(why.size() >= 8);  // a sentence, not a code
    for (const char* word : b.says) {
      CAPTURE(word);
      CHECK(contains(why, word));
    }
    // Without a `why` it fails the same way (and does not crash).
    CHECK_FALSE(Address::parse_numeric(b.text).ok());
  }
}

TEST_CASE("address: '::1:80' is rejected with advice to use brackets") {
  std::string why;
  auto r = Address::parse_numeric("::1:80", &why);
  REQUIRE_FALSE(r.ok());
  CHECK(contains(why, "bracket"));
  CHECK(contains(why, "[::1]"));
}

TEST_CASE("address: a port too long for any integer is reported as out of range") {
  // "70000" says "out of range"; a longer number must not be called "not a number".
  for (const char* text : {"1.2.3.4:99999999999", "[::1]:4294967296"}) {
    CAPTURE(text);
    std::string why;
    auto r = Address::parse_numeric(text, &why);
    INFO("why: " << why);
    CHECK_FALSE(r.ok());
    CHECK(contains(why, "range"));
    CHECK_FALSE(contains(why, "not a number"));
  }
}

TEST_CASE("address: to_string round trips through parse") {
  for (const auto& g : kGood) {
    CAPTURE(g.text);
    auto r = Address::parse_numeric(g.text);
    REQUIRE(r.ok());
    std::string printed = r->to_string();
    auto back = Address::parse_numeric(printed);
    REQUIRE(back.ok());
    CHECK(*back == *r);
    CHECK(back->to_string() == printed);
  }
  Address none;
  CHECK(none.to_string() == "-");
  CHECK(none.host() == "-");
  CHECK(none.family() == AF_UNSPEC);
  CHECK(none.port() == 0);
}

TEST_CASE("address: from_sockaddr reads IPv4 and IPv6 socket addresses") {
  SUBCASE("IPv4") {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(4567);
    REQUIRE(::inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr) == 1);
    auto a = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
    CHECK(a.family() == AF_INET);
    CHECK(a.to_string() == "10.1.2.3:4567");
    CHECK(a.port() == 4567);
    CHECK(a.length() == sizeof(sockaddr_in));
    CHECK(a == *Address::parse_numeric("10.1.2.3:4567"));
  }
  SUBCASE("IPv6") {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(65535);
    REQUIRE(::inet_pton(AF_INET6, "2001:db8::42", &sin6.sin6_addr) == 1);
    auto a = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
    CHECK(a.is_ipv6());
    CHECK(a.to_string() == "[2001:db8::42]:65535");
    CHECK(a.length() == sizeof(sockaddr_in6));
    CHECK(a == *Address::parse_numeric("[2001:db8::42]:65535"));
  }
  SUBCASE("nothing usable gives the unspecified address") {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    auto null_sa = Address::from_sockaddr(nullptr, sizeof sin);
    CHECK(null_sa.family() == AF_UNSPEC);
    CHECK(null_sa.to_string() == "-");
    auto empty = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), 0);
    CHECK(empty.family() == AF_UNSPEC);
    // Longer than any socket address: refused rather than over-read.
    alignas(sockaddr_storage) char big[sizeof(sockaddr_storage) + 16] = {};
    reinterpret_cast<sockaddr*>(big)->sa_family = AF_INET;
    auto too_long = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(big), sizeof big);
    CHECK(too_long.family() == AF_UNSPEC);
  }
  SUBCASE("a real loopback socket's name") {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    auto bind_to = Address::ipv4_loopback(0);
    REQUIRE(::bind(fd, bind_to.sockaddr_ptr(), bind_to.length()) == 0);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
    ::close(fd);
    auto a = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
    CHECK(a.family() == AF_INET);
    CHECK(a.host() == "127.0.0.1");
    CHECK(a.port() != 0);  // the kernel picked one
    auto same = Address::ipv4_loopback(a.port());
    CHECK(a == same);
  }
}

TEST_CASE("address: operator== compares family, host and port only") {
  auto a = *Address::parse_numeric("127.0.0.1:80");
  CHECK(a == *Address::parse_numeric("127.0.0.1:80"));
  CHECK(a == *Address::parse_numeric("localhost:80"));
  CHECK_FALSE(a == *Address::parse_numeric("127.0.0.1:81"));
  CHECK_FALSE(a == *Address::parse_numeric("127.0.0.2:80"));
  CHECK_FALSE(a == *Address::parse_numeric("[::ffff:127.0.0.1]:80"));  // different family
  CHECK_FALSE(a == Address());
  CHECK(Address() == Address());

  // Padding bytes (sin_zero) are not part of the address.
  sockaddr_in sin{};
  std::memset(&sin, 0xAB, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons(80);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin) == a);

  auto v6 = *Address::parse_numeric("[fe80::1]:80");
  CHECK(v6 == *Address::parse_numeric("[fe80::1]:80"));
  CHECK_FALSE(v6 == *Address::parse_numeric("[fe80::2]:80"));
  CHECK_FALSE(v6 == *Address::parse_numeric("[fe80::1]:81"));
  // The scope (interface) of a link-local address is part of it.
  sockaddr_in6 sin6{};
  std::memcpy(&sin6, v6.sockaddr_ptr(), sizeof sin6);
  sin6.sin6_scope_id = 2;
  auto scoped = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
  CHECK_FALSE(scoped == v6);
}

TEST_CASE("address: loopback helpers and set_port") {
  auto v4 = Address::ipv4_loopback(7007);
  CHECK(v4.family() == AF_INET);
  CHECK_FALSE(v4.is_ipv6());
  CHECK(v4.host() == "127.0.0.1");
  CHECK(v4.port() == 7007);
  CHECK(v4.to_string() == "127.0.0.1:7007");
  CHECK(v4 == *Address::parse_numeric("127.0.0.1:7007"));

  auto v6 = Address::ipv6_loopback(8080);
  CHECK(v6.family() == AF_INET6);
  CHECK(v6.is_ipv6());
  CHECK(v6.host() == "::1");
  CHECK(v6.port() == 8080);
  CHECK(v6.to_string() == "[::1]:8080");
  CHECK(v6 == *Address::parse_numeric("[::1]:8080"));
  CHECK_FALSE(v4 == v6);

  v4.set_port(1);
  CHECK(v4.port() == 1);
  CHECK(v4.to_string() == "127.0.0.1:1");
  v6.set_port(65535);
  CHECK(v6.to_string() == "[::1]:65535");

  Address none;
  none.set_port(80);  // no family: nothing to set
  CHECK(none.port() == 0);
  CHECK(none.to_string() == "-");
}
