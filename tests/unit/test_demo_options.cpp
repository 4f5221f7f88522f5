// Unit tests for netloop-demo's command line (demos/demo_options.cpp): defaults, each
// option in both spellings, sizes, and a table of bad input with its message.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "demo_options.hpp"

using netloop::Address;
using netloop::LogLevel;
using netloop::demo::DemoOptions;
using netloop::demo::parse_demo_options;

namespace {

using Args = std::vector<std::string>;

DemoOptions parse_ok(const Args& args) {
  auto out = parse_demo_options(args);
  INFO("error: " << out.error);
  REQUIRE(out.options.has_value());
  CHECK(out.error.empty());
  return *out.options;
}

std::string join(const Args& args) {
  std::string s;
  for (const auto& a : args) {
    if (!s.empty()) s.push_back(' ');
    s.push_back('\'');
    s.append(a);
    s.push_back('\'');
  }
  return s;
}

}  // namespace

TEST_CASE("demo options: no arguments means TCP echo on 127.0.0.1:7007 with safe defaults") {
  auto o = parse_ok({});
  REQUIRE(o.tcp_echo.size() == 1);
  CHECK(o.tcp_echo[0] == Address::ipv4_loopback(7007));
  CHECK(o.tcp_echo[0].to_string() == "127.0.0.1:7007");
  CHECK(o.poller.empty());
  CHECK(o.log_level == LogLevel::info);
  CHECK(o.connection.high_water == 256 * 1024);
  CHECK(o.connection.low_water == 64 * 1024);
  CHECK(o.connection.max_input == 1024 * 1024);
  CHECK(o.connection.low_water <= o.connection.high_water);
  CHECK_FALSE(o.help);
  CHECK_FALSE(o.version);
  CHECK_FALSE(o.list_pollers);
}

TEST_CASE("demo options: --tcp-echo is repeatable and replaces the default") {
  auto o = parse_ok({"--tcp-echo", "127.0.0.1:9000", "--tcp-echo=[::1]:9001", "--tcp-echo",
                     "localhost:0"});
  REQUIRE(o.tcp_echo.size() == 3);
  CHECK(o.tcp_echo[0].to_string() == "127.0.0.1:9000");
  CHECK(o.tcp_echo[1].to_string() == "[::1]:9001");
  CHECK(o.tcp_echo[2].to_string() == "127.0.0.1:0");

  auto one = parse_ok({"--tcp-echo", "0.0.0.0:7"});
  REQUIRE(one.tcp_echo.size() == 1);  // no extra default listener
  CHECK(one.tcp_echo[0].to_string() == "0.0.0.0:7");
}

TEST_CASE("demo options: --opt value and --opt=value mean the same") {
  const std::vector<std::pair<Args, Args>> same = {
      {{"--poller", "poll"}, {"--poller=poll"}},
      {{"--log-level", "debug"}, {"--log-level=debug"}},
      {{"--tcp-echo", "127.0.0.1:1"}, {"--tcp-echo=127.0.0.1:1"}},
      {{"--high-water", "1m"}, {"--high-water=1m"}},
      {{"--low-water", "1k"}, {"--low-water=1k"}},
      {{"--max-input", "2m"}, {"--max-input=2m"}},
  };
  for (const auto& forms : same) {
    // Named copies, not structured bindings: clang 14 cannot capture those in CAPTURE's lambda.
    const Args& spaced = forms.first;
    const Args& inline_form = forms.second;
    CAPTURE(join(spaced));
    auto a = parse_ok(spaced);
    auto b = parse_ok(inline_form);
    CHECK(a.poller == b.poller);
    CHECK(a.log_level == b.log_level);
    CHECK(a.tcp_echo == b.tcp_echo);
    CHECK(a.connection.high_water == b.connection.high_water);
    CHECK(a.connection.low_water == b.connection.low_water);
    CHECK(a.connection.max_input == b.connection.max_input);
  }
  auto o = parse_ok({"--poller=epoll", "--log-level=warn"});
  CHECK(o.poller == "epoll");
  CHECK(o.log_level == LogLevel::warn);
}

TEST_CASE("demo options: flags") {
  CHECK(parse_ok({"--help"}).help);
  CHECK(parse_ok({"-h"}).help);
  CHECK(parse_ok({"--version"}).version);
  CHECK(parse_ok({"--list-pollers"}).list_pollers);
  for (const char* level : {"debug", "info", "warn", "error", "off"}) {
    CAPTURE(level);
    parse_ok({"--log-level", level});
  }
  CHECK(parse_ok({"--log-level", "error"}).log_level == LogLevel::error);
  CHECK(parse_ok({"--log-level", "off"}).log_level == LogLevel::off);
}

TEST_CASE("demo options: sizes accept plain bytes, k and m suffixes") {
  struct Case {
    const char* text;
    size_t bytes;
  };
  const Case cases[] = {
      {"64k", 64 * 1024},         {"64K", 64 * 1024},      {"1m", 1024 * 1024},
      {"1M", 1024 * 1024},        {"1048576", 1048576},    {"1", 1},
      {"300m", 300u * 1024 * 1024},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto o = parse_ok({"--max-input", c.text});
    CHECK(o.connection.max_input == c.bytes);
  }
  auto o = parse_ok({"--high-water", "1m", "--low-water", "64k"});
  CHECK(o.connection.high_water == 1024 * 1024);
  CHECK(o.connection.low_water == 64 * 1024);
  // Equal marks are allowed.
  auto eq = parse_ok({"--high-water", "128k", "--low-water", "128k"});
  CHECK(eq.connection.high_water == eq.connection.low_water);
  // Order of the two options does not matter.
  auto rev = parse_ok({"--low-water", "8k", "--high-water", "16k"});
  CHECK(rev.connection.low_water == 8 * 1024);
  CHECK(rev.connection.high_water == 16 * 1024);
  // Lowering only the high mark below the default low mark pulls the low mark down too.
  auto low_follows = parse_ok({"--high-water", "32k"});
  CHECK(low_follows.connection.high_water == 32 * 1024);
  CHECK(low_follows.connection.low_water == 8 * 1024);
}

TEST_CASE("demo options: bad input is refused with a message naming the problem") {
  struct Bad {
    Args args;
    const char* says;  // must appear in the message
  };
  const Bad cases[] = {
      // bad sizes
      {{"--high-water", "abc"}, "--high-water"},
      {{"--high-water", ""}, "--high-water"},
      {{"--high-water", "k"}, "k"},
      {{"--high-water", "64x"}, "64x"},
      {{"--high-water", "64kb"}, "64kb"},
      {{"--high-water", "-1"}, "-1"},
      {{"--high-water", "0"}, "positive"},
      {{"--max-input", "0k"}, "--max-input"},
      {{"--max-input", "1g"}, "1g"},
      {{"--low-water", "1.5k"}, "1.5k"},
      {{"--max-input", "99999999999999999999"}, "--max-input"},
      {{"--max-input", "18014398509481984m"}, "--max-input"},  // overflows size_t
      // low above high
      {{"--high-water", "64k", "--low-water", "128k"}, "--low-water"},
      // unknown options
      {{"--bogus"}, "--bogus"},
      {{"--bogus=1"}, "--bogus"},
      {{"extra"}, "extra"},
      {{"-x"}, "-x"},
      // missing values
      {{"--tcp-echo"}, "--tcp-echo"},
      {{"--poller"}, "--poller"},
      {{"--poller="}, "--poller"},
      {{"--log-level"}, "--log-level"},
      {{"--high-water"}, "--high-water"},
      {{"--low-water"}, "--low-water"},
      {{"--max-input"}, "--max-input"},
      // bad values
      {{"--tcp-echo", "::1:80"}, "bracket"},
      {{"--tcp-echo", "127.0.0.1:99999"}, "99999"},
      {{"--tcp-echo", "example.com:80"}, "example.com"},
      {{"--tcp-echo="}, "--tcp-echo"},
      {{"--log-level", "loud"}, "loud"},
      // flags take no value
      {{"--help=yes"}, "--help"},
      {{"--version=1"}, "--version"},
      {{"--list-pollers=all"}, "--list-pollers"},
  };
  for (const auto& c : cases) {
    CAPTURE(join(c.args));
    auto out = parse_demo_options(c.args);
    INFO("error: " << out.error);
    CHECK_FALSE(out.options.has_value());
    CHECK_FALSE(out.error.empty());
    CHECK(out.error.size() >= 10);
    CHECK(out.error.find(c.says) != std::string::npos);
  }
}

TEST_CASE("demo options: an error after good options still fails the whole parse") {
  auto out = parse_demo_options({"--tcp-echo", "127.0.0.1:1", "--poller", "poll", "--nope"});
  CHECK_FALSE(out.options.has_value());
  CHECK(out.error.find("--nope") != std::string::npos);
}

TEST_CASE("demo options: usage mentions every option") {
  std::string usage = netloop::demo::demo_usage();
  for (const char* opt : {"--tcp-echo", "--poller", "--list-pollers", "--high-water", "--low-water",
                          "--max-input", "--log-level", "--help", "--version"}) {
    CAPTURE(opt);
    CHECK(usage.find(opt) != std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------
// UDP: --udp-echo, --udp-batch, --udp-max-datagram and the default listeners

TEST_CASE("demo options: no arguments means TCP and UDP echo on 127.0.0.1:7007") {
  auto o = parse_ok({});
  REQUIRE(o.tcp_echo.size() == 1);
  REQUIRE(o.udp_echo.size() == 1);
  CHECK(o.tcp_echo[0] == Address::ipv4_loopback(7007));
  CHECK(o.udp_echo[0] == Address::ipv4_loopback(7007));
  CHECK(o.udp_echo[0].to_string() == "127.0.0.1:7007");
  // The UDP limits keep the library's defaults.
  const netloop::UdpOptions lib_defaults;
  CHECK(o.udp.batch == 32);
  CHECK(o.udp.max_datagram == 65535);
  CHECK(o.udp.batch == lib_defaults.batch);
  CHECK(o.udp.max_datagram == lib_defaults.max_datagram);
  CHECK(o.udp.batches_per_wakeup == lib_defaults.batches_per_wakeup);
  CHECK(o.udp.recv_buffer == lib_defaults.recv_buffer);
  CHECK(o.udp.send_buffer == lib_defaults.send_buffer);

  // Options that are not listeners keep both defaults.
  auto limits = parse_ok({"--udp-batch", "8", "--udp-max-datagram", "1000", "--poller", "poll",
                          "--high-water", "1m"});
  CHECK(limits.tcp_echo.size() == 1);
  CHECK(limits.udp_echo.size() == 1);
}

TEST_CASE("demo options: a listener of either kind replaces both defaults") {
  auto tcp_only = parse_ok({"--tcp-echo", "127.0.0.1:9000"});
  REQUIRE(tcp_only.tcp_echo.size() == 1);
  CHECK(tcp_only.tcp_echo[0].to_string() == "127.0.0.1:9000");
  CHECK(tcp_only.udp_echo.empty());

  auto udp_only = parse_ok({"--udp-echo", "127.0.0.1:9001"});
  REQUIRE(udp_only.udp_echo.size() == 1);
  CHECK(udp_only.udp_echo[0].to_string() == "127.0.0.1:9001");
  CHECK(udp_only.tcp_echo.empty());

  // Both kinds, even on the same port number: exactly what was asked for.
  auto both = parse_ok({"--udp-echo", "127.0.0.1:9002", "--tcp-echo", "127.0.0.1:9002"});
  REQUIRE(both.tcp_echo.size() == 1);
  REQUIRE(both.udp_echo.size() == 1);
  CHECK(both.tcp_echo[0] == both.udp_echo[0]);
}

TEST_CASE("demo options: --udp-echo is repeatable, both spellings, IPv4 and IPv6") {
  auto o = parse_ok({"--udp-echo", "127.0.0.1:9000", "--udp-echo=[::1]:9001", "--udp-echo",
                     "localhost:0", "--udp-echo=0.0.0.0:53"});
  REQUIRE(o.udp_echo.size() == 4);
  CHECK(o.udp_echo[0].to_string() == "127.0.0.1:9000");
  CHECK(o.udp_echo[1].to_string() == "[::1]:9001");
  CHECK(o.udp_echo[1].is_ipv6());
  CHECK(o.udp_echo[2].to_string() == "127.0.0.1:0");
  CHECK(o.udp_echo[3].to_string() == "0.0.0.0:53");
  CHECK(o.tcp_echo.empty());

  // The two spellings give the same result for every UDP option.
  const std::vector<std::pair<Args, Args>> same = {
      {{"--udp-echo", "127.0.0.1:1"}, {"--udp-echo=127.0.0.1:1"}},
      {{"--udp-batch", "64"}, {"--udp-batch=64"}},
      {{"--udp-max-datagram", "1k"}, {"--udp-max-datagram=1k"}},
  };
  for (const auto& forms : same) {
    // Named copies, not structured bindings: clang 14 cannot capture those in CAPTURE's lambda.
    const Args& spaced = forms.first;
    const Args& inline_form = forms.second;
    CAPTURE(join(spaced));
    auto a = parse_ok(spaced);
    auto b = parse_ok(inline_form);
    CHECK(a.udp_echo == b.udp_echo);
    CHECK(a.tcp_echo == b.tcp_echo);
    CHECK(a.udp.batch == b.udp.batch);
    CHECK(a.udp.max_datagram == b.udp.max_datagram);
  }
}

TEST_CASE("demo options: --udp-batch takes a plain count from 1 to 1024") {
  struct Case {
    const char* text;
    size_t batch;
  };
  for (const Case& c : {Case{"1", 1}, Case{"2", 2}, Case{"32", 32}, Case{"1000", 1000},
                        Case{"1024", 1024}, Case{"0064", 64}}) {
    CAPTURE(c.text);
    auto o = parse_ok({"--udp-batch", c.text});
    CHECK(o.udp.batch == c.batch);
    CHECK(o.udp.max_datagram == 65535);  // untouched
  }
  // The last one given wins.
  CHECK(parse_ok({"--udp-batch", "4", "--udp-batch", "16"}).udp.batch == 16);
}

TEST_CASE("demo options: --udp-max-datagram takes a size from 1 to 65535") {
  struct Case {
    const char* text;
    size_t bytes;
  };
  for (const Case& c : {Case{"1", 1}, Case{"1000", 1000}, Case{"1k", 1024}, Case{"1K", 1024},
                        Case{"63k", 63 * 1024}, Case{"65507", 65507}, Case{"65535", 65535}}) {
    CAPTURE(c.text);
    auto o = parse_ok({"--udp-max-datagram", c.text});
    CHECK(o.udp.max_datagram == c.bytes);
    CHECK(o.udp.batch == 32);  // untouched
  }
  // UDP options do not touch the TCP connection limits.
  auto o = parse_ok({"--udp-max-datagram", "1000", "--udp-batch", "8"});
  CHECK(o.connection.high_water == 256 * 1024);
  CHECK(o.connection.low_water == 64 * 1024);
  CHECK(o.connection.max_input == 1024 * 1024);
}

TEST_CASE("demo options: bad UDP options are refused with a message naming the problem") {
  struct Bad {
    Args args;
    const char* says;  // must appear in the message
  };
  const Bad cases[] = {
      // --udp-batch: out of range, suffixes, not numbers
      {{"--udp-batch", "0"}, "--udp-batch"},
      {{"--udp-batch", "0"}, "1 to 1024"},
      {{"--udp-batch", "1025"}, "1025"},
      {{"--udp-batch", "1025"}, "1 to 1024"},
      {{"--udp-batch", "1k"}, "1k"},
      {{"--udp-batch", "1K"}, "1K"},
      {{"--udp-batch", "abc"}, "abc"},
      {{"--udp-batch", "-1"}, "-1"},
      {{"--udp-batch", "32x"}, "32x"},
      {{"--udp-batch", "99999999999999999999"}, "--udp-batch"},
      {{"--udp-batch", ""}, "--udp-batch"},
      {{"--udp-batch="}, "--udp-batch"},
      {{"--udp-batch"}, "--udp-batch"},
      // --udp-max-datagram: out of range, not sizes
      {{"--udp-max-datagram", "0"}, "--udp-max-datagram"},
      {{"--udp-max-datagram", "0"}, "1 to 65535"},
      {{"--udp-max-datagram", "65536"}, "65536"},
      {{"--udp-max-datagram", "65536"}, "1 to 65535"},
      {{"--udp-max-datagram", "64k"}, "64k"},
      {{"--udp-max-datagram", "1m"}, "1m"},
      {{"--udp-max-datagram", "x"}, "--udp-max-datagram"},
      {{"--udp-max-datagram", "x"}, "1 to 65535"},
      {{"--udp-max-datagram", "1.5k"}, "1.5k"},
      {{"--udp-max-datagram", ""}, "--udp-max-datagram"},
      {{"--udp-max-datagram"}, "--udp-max-datagram"},
      // --udp-echo: bad or missing addresses
      {{"--udp-echo"}, "--udp-echo"},
      {{"--udp-echo="}, "--udp-echo"},
      {{"--udp-echo", "::1:80"}, "bracket"},
      {{"--udp-echo", "::1:80"}, "--udp-echo"},
      {{"--udp-echo", "127.0.0.1:99999"}, "99999"},
      {{"--udp-echo", "127.0.0.1"}, "--udp-echo"},
      {{"--udp-echo", "example.com:53"}, "example.com"},
      // an error after a good UDP listener still fails the whole parse
      {{"--udp-echo", "127.0.0.1:1", "--udp-batch", "0"}, "--udp-batch"},
  };
  for (const auto& c : cases) {
    CAPTURE(join(c.args));
    auto out = parse_demo_options(c.args);
    INFO("error: " << out.error);
    CHECK_FALSE(out.options.has_value());
    CHECK(out.error.size() >= 10);
    CHECK(out.error.find(c.says) != std::string::npos);
  }
}

TEST_CASE("demo options: usage mentions the UDP options and the default listeners") {
  std::string usage = netloop::demo::demo_usage();
  for (const char* opt : {"--udp-echo", "--udp-batch", "--udp-max-datagram"}) {
    CAPTURE(opt);
    CHECK(usage.find(opt) != std::string::npos);
  }
  CHECK(usage.find("TCP and UDP echo on 127.0.0.1:7007") != std::string::npos);
}
