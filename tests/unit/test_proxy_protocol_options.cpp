// Cidr and ProxyProtocolOptions: strict parsing of trusted networks, and matching by prefix.
#include <doctest/doctest.h>

#include "netloop/proxy_protocol_options.hpp"

using namespace netloop;

TEST_CASE("Cidr parsing is strict and matching is by prefix") {
  std::string why;
  CHECK(Cidr::parse("10.0.0.0/8")->contains(*Address::parse_numeric("10.1.2.3:80")));
  CHECK_FALSE(Cidr::parse("10.0.0.0/8")->contains(*Address::parse_numeric("11.0.0.1:80")));
  CHECK(Cidr::parse("::1/128")->contains(Address::ipv6_loopback(1)));
  CHECK_FALSE(Cidr::parse("::1/128")->contains(Address::ipv4_loopback(1)));
  CHECK(Cidr::parse("127.0.0.0/8")->contains(*Address::parse_numeric("[::ffff:127.0.0.2]:80")));
  CHECK(Cidr::parse("0.0.0.0/0")->contains(*Address::parse_numeric("203.0.113.9:1")));
  CHECK(Cidr::parse("fd00::/8")->contains(*Address::parse_numeric("[fd12::1]:1")));
  CHECK(Cidr::parse("192.168.1.128/25")->contains(*Address::parse_numeric("192.168.1.200:1")));
  CHECK_FALSE(Cidr::parse("192.168.1.128/25")->contains(*Address::parse_numeric("192.168.1.1:1")));
  CHECK(Cidr::parse("192.0.2.7")->prefix_length() == 32);
  for (const char* bad : {"", "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+8",
                          "10.0.0.0/08", "10.0.0.0/8x", "localhost", "10.0.0/8", "::1/129",
                          "fe80::1%eth0/128", "[::1]/128", "10.0.0.0 /8"}) {
    CAPTURE(bad);
    why.clear();
    CHECK_FALSE(Cidr::parse(bad));
    CHECK(why.empty());  // filled only when asked for
    CHECK_FALSE(Cidr::parse(bad, &why));
    CHECK(why.find(bad) != std::string::npos);
  }
  CHECK(Cidr::parse_list("10.0.0.0/8,::1/128")->size() == 2);
  CHECK_FALSE(Cidr::parse_list("10.0.0.0/8,"));
  CHECK_FALSE(Cidr::parse_list(""));
}

TEST_CASE("ProxyProtocolOptions trusts loopback only by default") {
  ProxyProtocolOptions o;
  CHECK(o.trusts(Address::ipv4_loopback(1)));
  CHECK(o.trusts(*Address::parse_numeric("127.9.9.9:1")));
  CHECK(o.trusts(Address::ipv6_loopback(1)));
  CHECK_FALSE(o.trusts(*Address::parse_numeric("10.0.0.1:1")));
  CHECK_FALSE(o.trusts(*Address::parse_numeric("[::2]:1")));
  CHECK_FALSE(o.trusts(Address()));
  o.trusted.clear();
  CHECK_FALSE(o.trusts(Address::ipv4_loopback(1)));
}
