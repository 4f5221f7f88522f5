// Unit tests for netloop-demo's command line (demos/demo_options.cpp): defaults, each
// option in both spellings, sizes, and a table of bad input with its message.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "demo_options.hpp"
#include "demo_protocol.hpp"
#include "option_table.hpp"

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

// Each `args` is refused, with a one-line message containing `says`.
struct RefusedArgs {
  Args args;
  const char* says;
};
template <size_t N>
void check_refused(const RefusedArgs (&cases)[N]) {
  for (const auto& c : cases) {
    auto out = parse_demo_options(c.args);
    INFO(join(c.args) << " -> " << out.error);
    CHECK_FALSE(out.options.has_value());
    CHECK(out.error.find(c.says) != std::string::npos);
    CHECK(out.error.find('\n') == std::string::npos);
  }
}

}  // namespace

TEST_CASE("demo options: no arguments means TCP echo on 127.0.0.1:7007 with safe defaults") {
  auto o = parse_ok({});
  REQUIRE(o.addresses("tcp-echo").size() == 1);
  CHECK(o.addresses("tcp-echo")[0] == Address::ipv4_loopback(7007));
  CHECK(o.addresses("tcp-echo")[0].to_string() == "127.0.0.1:7007");
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
  REQUIRE(o.addresses("tcp-echo").size() == 3);
  CHECK(o.addresses("tcp-echo")[0].to_string() == "127.0.0.1:9000");
  CHECK(o.addresses("tcp-echo")[1].to_string() == "[::1]:9001");
  CHECK(o.addresses("tcp-echo")[2].to_string() == "127.0.0.1:0");

  auto one = parse_ok({"--tcp-echo", "0.0.0.0:7"});
  REQUIRE(one.addresses("tcp-echo").size() == 1);  // no extra default listener
  CHECK(one.addresses("tcp-echo")[0].to_string() == "0.0.0.0:7");
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
    CHECK(a.addresses("tcp-echo") == b.addresses("tcp-echo"));
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
  REQUIRE(o.addresses("tcp-echo").size() == 1);
  REQUIRE(o.addresses("udp-echo").size() == 1);
  CHECK(o.addresses("tcp-echo")[0] == Address::ipv4_loopback(7007));
  CHECK(o.addresses("udp-echo")[0] == Address::ipv4_loopback(7007));
  CHECK(o.addresses("udp-echo")[0].to_string() == "127.0.0.1:7007");
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
  CHECK(limits.addresses("tcp-echo").size() == 1);
  CHECK(limits.addresses("udp-echo").size() == 1);
}

TEST_CASE("demo options: a listener of either kind replaces both defaults") {
  auto tcp_only = parse_ok({"--tcp-echo", "127.0.0.1:9000"});
  REQUIRE(tcp_only.addresses("tcp-echo").size() == 1);
  CHECK(tcp_only.addresses("tcp-echo")[0].to_string() == "127.0.0.1:9000");
  CHECK(tcp_only.addresses("udp-echo").empty());

  auto udp_only = parse_ok({"--udp-echo", "127.0.0.1:9001"});
  REQUIRE(udp_only.addresses("udp-echo").size() == 1);
  CHECK(udp_only.addresses("udp-echo")[0].to_string() == "127.0.0.1:9001");
  CHECK(udp_only.addresses("tcp-echo").empty());

  // Both kinds, even on the same port number: exactly what was asked for.
  auto both = parse_ok({"--udp-echo", "127.0.0.1:9002", "--tcp-echo", "127.0.0.1:9002"});
  REQUIRE(both.addresses("tcp-echo").size() == 1);
  REQUIRE(both.addresses("udp-echo").size() == 1);
  CHECK(both.addresses("tcp-echo")[0] == both.addresses("udp-echo")[0]);
}

TEST_CASE("demo options: --udp-echo is repeatable, both spellings, IPv4 and IPv6") {
  auto o = parse_ok({"--udp-echo", "127.0.0.1:9000", "--udp-echo=[::1]:9001", "--udp-echo",
                     "localhost:0", "--udp-echo=0.0.0.0:53"});
  REQUIRE(o.addresses("udp-echo").size() == 4);
  CHECK(o.addresses("udp-echo")[0].to_string() == "127.0.0.1:9000");
  CHECK(o.addresses("udp-echo")[1].to_string() == "[::1]:9001");
  CHECK(o.addresses("udp-echo")[1].is_ipv6());
  CHECK(o.addresses("udp-echo")[2].to_string() == "127.0.0.1:0");
  CHECK(o.addresses("udp-echo")[3].to_string() == "0.0.0.0:53");
  CHECK(o.addresses("tcp-echo").empty());

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
    CHECK(a.addresses("udp-echo") == b.addresses("udp-echo"));
    CHECK(a.addresses("tcp-echo") == b.addresses("tcp-echo"));
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

// ---------------------------------------------------------------------------------------
// HTTP: --http, --root, --header-timeout, --keepalive-timeout, --max-request-line,
// --max-header-bytes and the default HTTP listener

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

milliseconds ms(netloop::Duration d) { return std::chrono::duration_cast<milliseconds>(d); }

}  // namespace

TEST_CASE("demo options: no arguments also means HTTP on 127.0.0.1:8080 (built-in page)") {
  auto o = parse_ok({});
  REQUIRE(o.addresses("http").size() == 1);
  CHECK(o.addresses("http")[0] == Address::ipv4_loopback(8080));
  CHECK(o.addresses("http")[0].to_string() == "127.0.0.1:8080");
  // ...alongside the echo listeners.
  REQUIRE(o.addresses("tcp-echo").size() == 1);
  REQUIRE(o.addresses("udp-echo").size() == 1);
  CHECK(o.addresses("tcp-echo")[0].to_string() == "127.0.0.1:7007");
  CHECK(o.addresses("udp-echo")[0].to_string() == "127.0.0.1:7007");
  // The HTTP settings keep the library's (internet-safe) defaults.
  const netloop::http::HttpOptions lib;
  CHECK(o.http_options.root.empty());
  CHECK(o.http_options.index == lib.index);
  CHECK(ms(o.http_options.header_timeout) == milliseconds(10'000));
  CHECK(ms(o.http_options.keepalive_timeout) == milliseconds(30'000));
  CHECK(o.http_options.header_timeout == lib.header_timeout);
  CHECK(o.http_options.keepalive_timeout == lib.keepalive_timeout);
  CHECK(o.http_options.limits.max_request_line == 8 * 1024);
  CHECK(o.http_options.limits.max_head_bytes == 16 * 1024);
  CHECK(o.http_options.limits.max_request_line == lib.limits.max_request_line);
  CHECK(o.http_options.limits.max_head_bytes == lib.limits.max_head_bytes);
  CHECK(o.http_options.limits.max_headers == lib.limits.max_headers);
  CHECK(o.http_options.max_discarded_body == lib.max_discarded_body);

  // Options that are not listeners keep all three defaults.
  auto tuned = parse_ok({"--header-timeout", "5", "--max-header-bytes", "32k", "--poller", "poll"});
  CHECK(tuned.addresses("http").size() == 1);
  CHECK(tuned.addresses("tcp-echo").size() == 1);
  CHECK(tuned.addresses("udp-echo").size() == 1);
  CHECK(ms(tuned.http_options.header_timeout) == milliseconds(5'000));
  // --root alone serves that directory on the default HTTP listener.
  auto rooted = parse_ok({"--root", "/srv/www"});
  REQUIRE(rooted.addresses("http").size() == 1);
  CHECK(rooted.addresses("http")[0].to_string() == "127.0.0.1:8080");
  CHECK(rooted.http_options.root == "/srv/www");
}

TEST_CASE("demo options: --http is repeatable, both spellings, and replaces every default") {
  auto o = parse_ok({"--http", "127.0.0.1:8000", "--http=[::1]:8001", "--http", "localhost:0",
                     "--http=0.0.0.0:80"});
  REQUIRE(o.addresses("http").size() == 4);
  CHECK(o.addresses("http")[0].to_string() == "127.0.0.1:8000");
  CHECK(o.addresses("http")[1].to_string() == "[::1]:8001");
  CHECK(o.addresses("http")[1].is_ipv6());
  CHECK(o.addresses("http")[2].to_string() == "127.0.0.1:0");
  CHECK(o.addresses("http")[3].to_string() == "0.0.0.0:80");
  CHECK(o.addresses("tcp-echo").empty());
  CHECK(o.addresses("udp-echo").empty());

  // An echo listener alone replaces the HTTP default too.
  CHECK(parse_ok({"--tcp-echo", "127.0.0.1:9000"}).addresses("http").empty());
  CHECK(parse_ok({"--udp-echo", "127.0.0.1:9000"}).addresses("http").empty());
  // All kinds at once, even on one port number: exactly what was asked for.
  auto all = parse_ok({"--http", "127.0.0.1:9002", "--tcp-echo", "127.0.0.1:9003", "--udp-echo",
                       "127.0.0.1:9003"});
  REQUIRE(all.addresses("http").size() == 1);
  REQUIRE(all.addresses("tcp-echo").size() == 1);
  REQUIRE(all.addresses("udp-echo").size() == 1);
  CHECK(all.addresses("http")[0].to_string() == "127.0.0.1:9002");

  const std::vector<std::pair<Args, Args>> same = {
      {{"--http", "127.0.0.1:1"}, {"--http=127.0.0.1:1"}},
      {{"--http", "[::1]:1", "--root", "/tmp"}, {"--http=[::1]:1", "--root=/tmp"}},
      {{"--http", "127.0.0.1:1", "--header-timeout", "2.5"}, {"--http=127.0.0.1:1", "--header-timeout=2.5"}},
      {{"--http", "127.0.0.1:1", "--keepalive-timeout", "7"}, {"--http=127.0.0.1:1", "--keepalive-timeout=7"}},
      {{"--http", "127.0.0.1:1", "--max-request-line", "1k"}, {"--http=127.0.0.1:1", "--max-request-line=1k"}},
      {{"--http", "127.0.0.1:1", "--max-header-bytes", "64k"}, {"--http=127.0.0.1:1", "--max-header-bytes=64k"}},
  };
  for (const auto& forms : same) {
    // Named copies, not structured bindings: clang 14 cannot capture those in CAPTURE's lambda.
    const Args& spaced = forms.first;
    const Args& inline_form = forms.second;
    CAPTURE(join(spaced));
    auto a = parse_ok(spaced);
    auto b = parse_ok(inline_form);
    CHECK(a.addresses("http") == b.addresses("http"));
    CHECK(a.http_options.root == b.http_options.root);
    CHECK(a.http_options.header_timeout == b.http_options.header_timeout);
    CHECK(a.http_options.keepalive_timeout == b.http_options.keepalive_timeout);
    CHECK(a.http_options.limits.max_request_line == b.http_options.limits.max_request_line);
    CHECK(a.http_options.limits.max_head_bytes == b.http_options.limits.max_head_bytes);
  }
}

TEST_CASE("demo options: --root, before or after --http") {
  auto after = parse_ok({"--http", "127.0.0.1:0", "--root", "/var/www"});
  CHECK(after.http_options.root == "/var/www");
  auto before = parse_ok({"--root", "relative/dir", "--http", "127.0.0.1:0"});
  CHECK(before.http_options.root == "relative/dir");  // resolved when the server starts
  auto with_echo = parse_ok({"--tcp-echo", "127.0.0.1:0", "--root", "/x", "--http", "[::1]:0"});
  CHECK(with_echo.http_options.root == "/x");
  CHECK(with_echo.addresses("tcp-echo").size() == 1);
  // The last one given wins.
  CHECK(parse_ok({"--http", "127.0.0.1:0", "--root", "/a", "--root", "/b"}).http_options.root == "/b");
  // Without it: the built-in page.
  CHECK(parse_ok({"--http", "127.0.0.1:0"}).http_options.root.empty());
}

TEST_CASE("demo options: HTTP timeouts take seconds above 0, up to a day") {
  struct Case {
    const char* text;
    long long millis;
  };
  for (const Case& c : {Case{"1", 1'000}, Case{"0.5", 500}, Case{"0.001", 1}, Case{"10", 10'000},
                        Case{"2.25", 2'250}, Case{"86400", 86'400'000}, Case{"030", 30'000}}) {
    CAPTURE(c.text);
    auto h = parse_ok({"--http", "127.0.0.1:0", "--header-timeout", c.text});
    CHECK(ms(h.http_options.header_timeout).count() == c.millis);
    CHECK(ms(h.http_options.keepalive_timeout) == milliseconds(30'000));  // untouched
    auto k = parse_ok({"--http", "127.0.0.1:0", "--keepalive-timeout", c.text});
    CHECK(ms(k.http_options.keepalive_timeout).count() == c.millis);
    CHECK(ms(k.http_options.header_timeout) == milliseconds(10'000));  // untouched
  }
  // Independent of each other and of --write-timeout (which, unlike them, may be 0).
  auto o = parse_ok({"--http", "127.0.0.1:0", "--header-timeout", "3", "--keepalive-timeout", "4",
                     "--write-timeout", "0"});
  CHECK(ms(o.http_options.header_timeout) == milliseconds(3'000));
  CHECK(ms(o.http_options.keepalive_timeout) == milliseconds(4'000));
  CHECK(o.connection.write_timeout == netloop::Duration::zero());
}

TEST_CASE("demo options: HTTP limits take sizes from 64 bytes to 1m") {
  struct Case {
    const char* text;
    size_t bytes;
  };
  for (const Case& c : {Case{"64", 64}, Case{"1k", 1024}, Case{"8K", 8192}, Case{"4096", 4096},
                        Case{"16k", 16 * 1024}}) {
    CAPTURE(c.text);
    auto o = parse_ok({"--http", "127.0.0.1:0", "--max-request-line", c.text});
    CHECK(o.http_options.limits.max_request_line == c.bytes);
    CHECK(o.http_options.limits.max_head_bytes == 16 * 1024);  // untouched
  }
  for (const Case& c : {Case{"64", 64}, Case{"8k", 8 * 1024}, Case{"32k", 32 * 1024},
                        Case{"1m", 1024 * 1024}, Case{"1M", 1024 * 1024}, Case{"1048576", 1048576}}) {
    CAPTURE(c.text);
    // The request line must fit in the head: lower it with the head when needed.
    Args args = {"--http", "127.0.0.1:0", "--max-header-bytes", c.text};
    if (c.bytes < 8 * 1024) args.insert(args.end(), {"--max-request-line", c.text});
    auto o = parse_ok(args);
    CHECK(o.http_options.limits.max_head_bytes == c.bytes);
  }
  // Equal limits are allowed, in either order.
  auto eq = parse_ok({"--max-header-bytes", "2k", "--max-request-line", "2k", "--http", "127.0.0.1:0"});
  CHECK(eq.http_options.limits.max_request_line == 2048);
  CHECK(eq.http_options.limits.max_head_bytes == 2048);
  auto big_line = parse_ok({"--max-request-line", "64k", "--max-header-bytes", "1m"});
  CHECK(big_line.http_options.limits.max_request_line == 64 * 1024);
  CHECK(big_line.http_options.limits.max_head_bytes == 1024 * 1024);
}

TEST_CASE("demo options: bad HTTP options are refused with a message naming the problem") {
  struct Bad {
    Args args;
    const char* says;  // must appear in the message
  };
  const Bad cases[] = {
      // --http: bad or missing addresses
      {{"--http"}, "--http"},
      {{"--http="}, "--http"},
      {{"--http", "::1:80"}, "bracket"},
      {{"--http", "::1:80"}, "--http"},
      {{"--http", "127.0.0.1:99999"}, "99999"},
      {{"--http", "127.0.0.1"}, "--http"},
      {{"--http", "example.com:80"}, "example.com"},
      // --root: a value, and an HTTP listener to apply to
      {{"--http", "127.0.0.1:0", "--root"}, "--root"},
      {{"--http", "127.0.0.1:0", "--root", ""}, "--root"},
      {{"--http", "127.0.0.1:0", "--root="}, "--root"},
      {{"--tcp-echo", "127.0.0.1:0", "--root", "/tmp"}, "--root"},
      {{"--tcp-echo", "127.0.0.1:0", "--root", "/tmp"}, "--http"},
      {{"--udp-echo", "127.0.0.1:0", "--root", "/tmp"}, "--http"},
      {{"--root", "/tmp", "--tcp-echo", "127.0.0.1:0"}, "--http"},
      // timeouts: above 0, at most a day, plain decimal seconds
      {{"--http", "127.0.0.1:0", "--header-timeout", "0"}, "--header-timeout"},
      {{"--http", "127.0.0.1:0", "--header-timeout", "0"}, "above 0"},
      {{"--http", "127.0.0.1:0", "--header-timeout", "0.0"}, "--header-timeout"},
      {{"--http", "127.0.0.1:0", "--header-timeout", "-1"}, "-1"},
      {{"--http", "127.0.0.1:0", "--header-timeout", "86401"}, "86401"},
      {{"--http", "127.0.0.1:0", "--header-timeout", "10s"}, "10s"},
      {{"--http", "127.0.0.1:0", "--header-timeout", "abc"}, "abc"},
      {{"--http", "127.0.0.1:0", "--header-timeout", "nan"}, "--header-timeout"},
      {{"--http", "127.0.0.1:0", "--header-timeout", "inf"}, "--header-timeout"},
      {{"--http", "127.0.0.1:0", "--header-timeout", ""}, "--header-timeout"},
      {{"--http", "127.0.0.1:0", "--header-timeout"}, "--header-timeout"},
      {{"--http", "127.0.0.1:0", "--keepalive-timeout", "0"}, "--keepalive-timeout"},
      {{"--http", "127.0.0.1:0", "--keepalive-timeout", "0"}, "above 0"},
      {{"--http", "127.0.0.1:0", "--keepalive-timeout", "-5"}, "-5"},
      {{"--http", "127.0.0.1:0", "--keepalive-timeout", "1e9"}, "1e9"},
      {{"--http", "127.0.0.1:0", "--keepalive-timeout", "1m"}, "1m"},
      {{"--http", "127.0.0.1:0", "--keepalive-timeout="}, "--keepalive-timeout"},
      {{"--http", "127.0.0.1:0", "--keepalive-timeout"}, "--keepalive-timeout"},
      // limits: sizes from 64 to 1m
      {{"--http", "127.0.0.1:0", "--max-request-line", "63"}, "--max-request-line"},
      {{"--http", "127.0.0.1:0", "--max-request-line", "63"}, "64 to 1m"},
      {{"--http", "127.0.0.1:0", "--max-request-line", "0"}, "--max-request-line"},
      {{"--http", "127.0.0.1:0", "--max-request-line", "abc"}, "abc"},
      {{"--http", "127.0.0.1:0", "--max-request-line", "1.5k"}, "1.5k"},
      {{"--http", "127.0.0.1:0", "--max-request-line", "-1"}, "-1"},
      {{"--http", "127.0.0.1:0", "--max-request-line", ""}, "--max-request-line"},
      {{"--http", "127.0.0.1:0", "--max-request-line"}, "--max-request-line"},
      {{"--http", "127.0.0.1:0", "--max-header-bytes", "2m"}, "2m"},
      {{"--http", "127.0.0.1:0", "--max-header-bytes", "2m"}, "64 to 1m"},
      {{"--http", "127.0.0.1:0", "--max-header-bytes", "1025k"}, "1025k"},
      {{"--http", "127.0.0.1:0", "--max-header-bytes", "1048577"}, "1048577"},
      {{"--http", "127.0.0.1:0", "--max-header-bytes", "1g"}, "1g"},
      {{"--http", "127.0.0.1:0", "--max-header-bytes", "16kb"}, "16kb"},
      {{"--http", "127.0.0.1:0", "--max-header-bytes="}, "--max-header-bytes"},
      {{"--http", "127.0.0.1:0", "--max-header-bytes"}, "--max-header-bytes"},
      // the request line is part of the head: it cannot be the larger limit
      {{"--http", "127.0.0.1:0", "--max-request-line", "4k", "--max-header-bytes", "2k"},
       "--max-request-line must not exceed --max-header-bytes"},
      {{"--http", "127.0.0.1:0", "--max-header-bytes", "2k", "--max-request-line", "4k"},
       "--max-header-bytes"},
      {{"--http", "127.0.0.1:0", "--max-request-line", "32k"}, "--max-request-line"},  // head: 16k
      {{"--http", "127.0.0.1:0", "--max-header-bytes", "4k"}, "--max-header-bytes"},   // line: 8k
      // an error after good HTTP options still fails the whole parse
      {{"--http", "127.0.0.1:0", "--root", "/tmp", "--header-timeout", "0"}, "--header-timeout"},
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

TEST_CASE("demo options: usage mentions the HTTP options and the default HTTP listener") {
  std::string usage = netloop::demo::demo_usage();
  for (const char* opt : {"--http", "--root", "--header-timeout", "--keepalive-timeout",
                          "--max-request-line", "--max-header-bytes"}) {
    CAPTURE(opt);
    CHECK(usage.find(opt) != std::string::npos);
  }
  CHECK(usage.find("HTTP on 127.0.0.1:8080") != std::string::npos);
}

// ---------------------------------------------------------------------------------------
// The protocol table: --help, the listener flags and the options all come from it

TEST_CASE("demo options: --help lists every protocol of the table, with its own options") {
  std::string usage = netloop::demo::demo_usage();
  REQUIRE(netloop::demo::demo_protocols().size() >= 6);
  for (const auto* p : netloop::demo::demo_protocols()) {
    CAPTURE(p->name);
    CHECK(p->flag == "--" + std::string(p->name));
    std::string_view value = p->listen_value.empty() ? "HOST:PORT" : p->listen_value;
    CHECK(usage.find("  " + std::string(p->flag) + " " + std::string(value)) != std::string::npos);
    CHECK(usage.find(std::string(p->listen_help.substr(0, p->listen_help.find('\n')))) !=
          std::string::npos);
    for (const auto& opt : p->options) {
      CAPTURE(opt.name);
      CHECK(usage.find("  " + std::string(opt.name)) != std::string::npos);
    }
    CHECK(netloop::demo::find_protocol(p->name) == p);
  }
  CHECK(netloop::demo::find_protocol("nope") == nullptr);
}

TEST_CASE("demo options: every protocol's listener flag gives that protocol a listener") {
  for (const auto* p : netloop::demo::demo_protocols()) {
    CAPTURE(p->name);
    // A listener value that says more than HOST:PORT (the proxy's) gets an upstream.
    std::string more = p->parse_listener ? "=127.0.0.1:7" : "";
    Args args = {std::string(p->flag), "127.0.0.1:0" + more, std::string(p->flag) + "=[::1]:0" + more};
    // A TLS listener needs a certificate (only named here: the parse opens no file).
    if (p->tls) args.insert(args.end(), {"--tls-cert", "c.pem", "--tls-key", "k.pem"});
    auto o = parse_ok(args);
    auto mine = o.addresses(p->name);
    REQUIRE(mine.size() == 2);
    CHECK(mine[0].to_string() == "127.0.0.1:0");
    CHECK(mine[1].to_string() == "[::1]:0");
    // A service replaces the default listeners; an admin endpoint (metrics) does not.
    for (const auto* other : netloop::demo::demo_protocols()) {
      if (other == p) continue;
      CAPTURE(other->name);
      bool defaulted = !p->is_service && other->default_listener.has_value();
      CHECK(o.addresses(other->name).size() == (defaulted ? 1u : 0u));
    }
  }
}

TEST_CASE("demo options: no two options share a name") {
  std::vector<std::string> names;
  for (const auto* p : netloop::demo::demo_protocols()) {
    names.emplace_back(p->flag);
    for (const auto& opt : p->options) names.emplace_back(opt.name);
  }
  for (const char* common : {"--threads", "--poller", "--help", "--log-level", "--high-water"})
    names.emplace_back(common);
  std::sort(names.begin(), names.end());
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
}

TEST_CASE("demo options: the new HTTP and metrics flags") {
  auto o = parse_ok({"--http", "127.0.0.1:0", "--dotfiles", "--no-precompressed",
                     "--cache-control", "max-age=60", "--metrics", "127.0.0.1:0",
                     "--metrics-max-connections", "3"});
  CHECK(o.http_options.dotfiles);
  CHECK_FALSE(o.http_options.precompressed);
  CHECK(o.http_options.cache_control == "max-age=60");
  CHECK(o.metrics_max_connections == 3);
  CHECK(parse_ok({}).http_options.precompressed);
  CHECK_FALSE(parse_ok({}).http_options.dotfiles);
  CHECK(parse_ok({}).metrics_max_connections == 8);
  struct Bad {
    Args args;
    const char* says;
  };
  const Bad cases[] = {
      {{"--cache-control"}, "--cache-control"},
      {{"--cache-control="}, "--cache-control"},
      {{"--cache-control", "a\r\nX-Injected: 1"}, "control characters"},
      {{"--dotfiles=yes"}, "--dotfiles"},
      {{"--metrics-max-connections", "0"}, "1 to 1000"},
      {{"--metrics-max-connections", "x"}, "--metrics-max-connections"},
  };
  for (const auto& c : cases) {
    CAPTURE(join(c.args));
    auto out = parse_demo_options(c.args);
    CHECK_FALSE(out.options.has_value());
    CHECK(out.error.find(c.says) != std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------
// The TCP proxy

TEST_CASE("demo options: --tcp-proxy routes, repeatable, with their upstreams in order") {
  auto o = parse_ok({"--tcp-proxy", "127.0.0.1:6380=127.0.0.1:6379,[::1]:6379,db.example:6379",
                     "--tcp-proxy=[::1]:8081=localhost:8080"});
  REQUIRE(o.proxy_routes.size() == 2);
  auto mine = o.addresses("tcp-proxy");
  REQUIRE(mine.size() == 2);
  CHECK(mine[0].to_string() == "127.0.0.1:6380");
  CHECK(mine[1].to_string() == "[::1]:8081");
  CHECK(o.proxy_routes[0].listen == mine[0]);
  const auto& ups = o.proxy_routes[0].upstreams;
  REQUIRE(ups.size() == 3);
  CHECK(ups[0].text == "127.0.0.1:6379");
  REQUIRE(ups[0].address.has_value());
  CHECK(ups[0].address->to_string() == "127.0.0.1:6379");
  CHECK(ups[1].address->to_string() == "[::1]:6379");
  CHECK(ups[2].host == "db.example");
  CHECK(ups[2].port == 6379);
  CHECK_FALSE(ups[2].address.has_value());
  // A proxy is a service: no default listeners.
  CHECK(o.addresses("tcp-echo").empty());
  CHECK(o.addresses("http").empty());
  // The defaults, safe on the open internet.
  CHECK(o.proxy_options.connect_timeout == std::chrono::seconds(5));
  CHECK(o.proxy_options.idle_timeout == std::chrono::seconds(300));
  CHECK(o.proxy_options.retry_after == std::chrono::seconds(5));
}

TEST_CASE("demo options: the proxy's timeouts") {
  auto o = parse_ok({"--tcp-proxy", "127.0.0.1:0=127.0.0.1:1", "--proxy-connect-timeout", "0.5",
                     "--proxy-idle-timeout=0", "--proxy-retry-after", "30"});
  CHECK(o.proxy_options.connect_timeout == std::chrono::milliseconds(500));
  CHECK(o.proxy_options.idle_timeout == netloop::Duration::zero());
  CHECK(o.proxy_options.retry_after == std::chrono::seconds(30));
}

TEST_CASE("demo options: bad --tcp-proxy values say what is wrong") {
  struct Case {
    Args args;
    std::string says;
  };
  const Case cases[] = {
      {{"--tcp-proxy"}, "LISTEN=UPSTREAM"},
      {{"--tcp-proxy="}, "LISTEN=UPSTREAM"},
      {{"--tcp-proxy", "127.0.0.1:6380"}, "expected LISTEN=UPSTREAM"},
      {{"--tcp-proxy", "127.0.0.1:6380="}, "no upstream"},
      {{"--tcp-proxy", "nowhere:6380=127.0.0.1:1"}, "listen address 'nowhere:6380'"},
      {{"--tcp-proxy", "127.0.0.1:6380=127.0.0.1:0"}, "port '0'"},
      {{"--tcp-proxy", "127.0.0.1:6380=127.0.0.1:70000"}, "70000"},
      {{"--tcp-proxy", "127.0.0.1:6380=127.0.0.1"}, "upstream '127.0.0.1'"},
      {{"--tcp-proxy", "127.0.0.1:6380=::1:80"}, "brackets"},
      {{"--tcp-proxy", "127.0.0.1:6380=[nope]:80"}, "not an IPv6 address"},
      {{"--tcp-proxy", "127.0.0.1:6380=a b:80"}, "not a host name"},
      {{"--tcp-proxy", "127.0.0.1:6380=127.0.0.1:1,,127.0.0.1:2"}, "empty upstream"},
      {{"--tcp-proxy", "127.0.0.1:6380=127.0.0.1:1,"}, "empty upstream"},
      {{"--proxy-connect-timeout", "0", "--tcp-proxy", "127.0.0.1:0=127.0.0.1:1"}, "above 0"},
      {{"--proxy-retry-after", "x", "--tcp-proxy", "127.0.0.1:0=127.0.0.1:1"}, "--proxy-retry-after"},
      {{"--proxy-idle-timeout", "10"}, "add --tcp-proxy"},
  };
  for (const auto& c : cases) {
    CAPTURE(join(c.args));
    auto out = parse_demo_options(c.args);
    INFO("error: " << out.error);
    CHECK_FALSE(out.options.has_value());
    CHECK(out.error.find(c.says) != std::string::npos);
  }
  std::string many = "127.0.0.1:0=";
  for (int i = 1; i <= 65; ++i) {
    if (i > 1) many += ',';
    many += "127.0.0.1:";
    many += std::to_string(i);
  }
  auto out = parse_demo_options({"--tcp-proxy", many});
  CHECK(out.error.find("more than 64 upstreams") != std::string::npos);
}

// ---------------------------------------------------------------------------------------
// TLS: --https, --tls-echo, --tls-proxy, the certificates and the proxy's upstream TLS

TEST_CASE("demo options: TLS listeners, certificate pairs in order, the handshake timeout") {
  auto o = parse_ok({"--https", "127.0.0.1:8443", "--tls-echo=[::1]:7443", "--tls-cert",
                     "a.pem", "--tls-key", "a.key", "--tls-cert=b.pem", "--tls-key=b.key"});
  REQUIRE(o.addresses("https").size() == 1);
  CHECK(o.addresses("https")[0].to_string() == "127.0.0.1:8443");
  REQUIRE(o.addresses("tls-echo").size() == 1);
  CHECK(o.addresses("tls-echo")[0].to_string() == "[::1]:7443");
  REQUIRE(o.tls.certificates.size() == 2);
  CHECK(o.tls.certificates[0].certificate_chain == "a.pem");
  CHECK(o.tls.certificates[0].private_key == "a.key");
  CHECK(o.tls.certificates[1].certificate_chain == "b.pem");
  CHECK(o.tls.certificates[1].private_key == "b.key");
  CHECK(o.tls.handshake_timeout == std::chrono::seconds(10));
  // TLS listeners are services: no default listeners beside them.
  CHECK(o.addresses("tcp-echo").empty());
  CHECK(o.addresses("http").empty());
  // --https is HTTP/1.1 over TLS: ALPN http/1.1 alone (never h2); echo offers no ALPN.
  const auto* https = netloop::demo::find_protocol("https");
  REQUIRE(https != nullptr);
  CHECK(https->tls);
  CHECK(https->alpn == std::vector<std::string>{"http/1.1"});
  const auto* echo = netloop::demo::find_protocol("tls-echo");
  REQUIRE(echo != nullptr);
  CHECK(echo->tls);
  CHECK(echo->alpn.empty());
  CHECK_FALSE(netloop::demo::find_protocol("http")->tls);
  CHECK_FALSE(netloop::demo::find_protocol("tcp-proxy")->tls);
  CHECK(netloop::demo::find_protocol("tls-proxy")->tls);
}

TEST_CASE("demo options: --tls-handshake-timeout takes seconds, with s or ms") {
  const std::pair<const char*, netloop::Duration> good[] = {
      {"10", std::chrono::seconds(10)},
      {"10s", std::chrono::seconds(10)},
      {"0.5", std::chrono::milliseconds(500)},
      {"2.5s", std::chrono::milliseconds(2500)},
      {"500ms", std::chrono::milliseconds(500)},
      {"1ms", std::chrono::milliseconds(1)},
  };
  for (const auto& g : good) {
    CAPTURE(g.first);
    auto o = parse_ok({"--tls-echo", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k",
                       "--tls-handshake-timeout", g.first});
    CHECK(o.tls.handshake_timeout == g.second);
  }
}

TEST_CASE("demo options: --https also takes the HTTP options (--root)") {
  auto o = parse_ok({"--https", "127.0.0.1:0", "--root", "/srv", "--tls-cert", "c", "--tls-key", "k"});
  CHECK(o.http_options.root == "/srv");
}

TEST_CASE("demo options: --tls-proxy routes, with the certificates; upstream TLS options") {
  auto o = parse_ok({"--tls-proxy", "127.0.0.1:8443=127.0.0.1:8080,[::1]:8080", "--tls-cert", "c",
                     "--tls-key", "k", "--tcp-proxy", "127.0.0.1:6380=db.example:6379",
                     "--upstream-tls", "--upstream-ca", "ca.pem", "--upstream-sni", "db.example"});
  REQUIRE(o.tls_proxy_routes.size() == 1);
  REQUIRE(o.proxy_routes.size() == 1);
  CHECK(o.addresses("tls-proxy")[0].to_string() == "127.0.0.1:8443");
  CHECK(o.tls_proxy_routes[0].upstreams.size() == 2);
  CHECK(o.tls_proxy_routes[0].upstreams[1].text == "[::1]:8080");
  CHECK(o.addresses("tcp-proxy")[0].to_string() == "127.0.0.1:6380");
  CHECK(o.proxy_options.upstream_tls);
  CHECK(o.proxy_options.upstream_ca == "ca.pem");
  CHECK(o.proxy_options.upstream_sni == "db.example");
  // The defaults: plain upstreams, the system's trust store, the host as given.
  auto plain = parse_ok({"--tcp-proxy", "127.0.0.1:6380=127.0.0.1:6379"});
  CHECK_FALSE(plain.proxy_options.upstream_tls);
  CHECK(plain.proxy_options.upstream_ca.empty());
  CHECK(plain.proxy_options.upstream_sni.empty());
  // The proxy's options apply to a --tls-proxy alone too.
  auto alone = parse_ok({"--tls-proxy", "127.0.0.1:0=127.0.0.1:1", "--tls-cert", "c", "--tls-key",
                         "k", "--proxy-idle-timeout", "7", "--upstream-tls"});
  CHECK(alone.proxy_options.idle_timeout == std::chrono::seconds(7));
  CHECK(alone.proxy_options.upstream_tls);
}

TEST_CASE("demo options: bad TLS options say what is wrong") {
  struct Case {
    Args args;
    std::string says;
  };
  const Case cases[] = {
      {{"--https", "127.0.0.1:0"}, "--https needs a certificate: add --tls-cert FILE --tls-key FILE"},
      {{"--tls-echo", "127.0.0.1:0"}, "--tls-echo needs a certificate"},
      {{"--tls-proxy", "127.0.0.1:0=127.0.0.1:1"}, "--tls-proxy needs a certificate"},
      {{"--https", "127.0.0.1:0", "--tls-key", "k"}, "no --tls-cert before it"},
      {{"--https", "127.0.0.1:0", "--tls-cert", "c"}, "--tls-cert c has no --tls-key"},
      {{"--https", "127.0.0.1:0", "--tls-cert", "c", "--tls-cert", "d", "--tls-key", "k"},
       "--tls-cert c has no --tls-key"},
      {{"--https", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k", "--tls-key", "k2"},
       "no --tls-cert before it"},
      {{"--https", "127.0.0.1:0", "--tls-cert"}, "--tls-cert needs a certificate file"},
      {{"--https", "127.0.0.1:0", "--tls-cert="}, "--tls-cert needs a certificate file"},
      {{"--https", "127.0.0.1:0", "--tls-cert", "c", "--tls-key="}, "--tls-key needs a private key file"},
      {{"--tls-cert", "c", "--tls-key", "k"}, "apply to TLS listeners: add one of --tls-echo, --https, --tls-proxy"},
      {{"--http", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k"}, "apply to TLS listeners"},
      {{"--tls-handshake-timeout", "5"}, "apply to TLS listeners"},
      {{"--tls-echo", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k", "--tls-handshake-timeout", "0"},
       "--tls-handshake-timeout 0: expected a duration above 0"},
      {{"--tls-echo", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k", "--tls-handshake-timeout", "x"},
       "--tls-handshake-timeout x"},
      {{"--tls-echo", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k", "--tls-handshake-timeout", "-1s"},
       "--tls-handshake-timeout -1s"},
      {{"--tls-echo", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k", "--tls-handshake-timeout", "0ms"},
       "expected a duration above 0"},
      {{"--tls-echo", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k", "--tls-handshake-timeout", "2d"},
       "--tls-handshake-timeout 2d"},
      {{"--tls-echo", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k", "--tls-handshake-timeout"},
       "--tls-handshake-timeout needs"},
      {{"--tcp-proxy", "127.0.0.1:0=127.0.0.1:1", "--upstream-ca", "ca.pem"}, "add --upstream-tls"},
      {{"--tcp-proxy", "127.0.0.1:0=127.0.0.1:1", "--upstream-sni", "x"}, "add --upstream-tls"},
      {{"--tcp-proxy", "127.0.0.1:0=127.0.0.1:1", "--upstream-tls", "--upstream-ca="},
       "--upstream-ca needs a CA file"},
      {{"--tcp-proxy", "127.0.0.1:0=127.0.0.1:1", "--upstream-tls", "--upstream-sni", ""},
       "--upstream-sni needs a host name"},
      {{"--upstream-tls"}, "add --tcp-proxy"},
      {{"--tcp-proxy", "127.0.0.1:0=127.0.0.1:1", "--upstream-tls=yes"}, "--upstream-tls"},
      {{"--tls-proxy", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k"}, "expected LISTEN=UPSTREAM"},
  };
  for (const auto& c : cases) {
    CAPTURE(join(c.args));
    auto out = parse_demo_options(c.args);
    INFO("error: " << out.error);
    CHECK_FALSE(out.options.has_value());
    CHECK(out.error.find(c.says) != std::string::npos);
  }
}

TEST_CASE("demo options: usage describes the TLS listeners, options and SIGHUP") {
  std::string usage = netloop::demo::demo_usage();
  for (const char* s : {"  --https HOST:PORT", "  --tls-echo HOST:PORT",
                        "  --tls-proxy LISTEN=UPSTREAM[,UPSTREAM...]", "  --tls-cert FILE",
                        "  --tls-key FILE", "  --tls-handshake-timeout DURATION", "  --upstream-tls",
                        "  --upstream-ca FILE", "  --upstream-sni NAME", "SIGHUP", "never h2"}) {
    CAPTURE(s);
    CHECK(usage.find(s) != std::string::npos);
  }
}

TEST_CASE("demo options: per-client limits") {
  DemoOptions d = parse_ok({});
  CHECK(d.max_connections_per_ip == 0);  // off: behind a balancer every client shares one address
  CHECK(d.client_ipv6_prefix == 64);
  CHECK(d.rate_limit == 0);
  CHECK(d.rate_limit_clients == 65'536);
  DemoOptions o = parse_ok({"--max-connections-per-ip", "3", "--client-ipv6-prefix=48",
                            "--rate-limit", "5/s", "--rate-limit-clients", "1000"});
  CHECK(o.max_connections_per_ip == 3);
  CHECK(o.client_ipv6_prefix == 48);
  CHECK(o.rate_limit == 5);
  CHECK(o.rate_burst == 5);  // the rate, rounded up
  CHECK(o.rate_limit_clients == 1000);
  CHECK(parse_ok({"--rate-limit", "0.5"}).rate_burst == 1);
  CHECK(parse_ok({"--rate-limit", "2.5/s", "--rate-burst", "10"}).rate_burst == 10);
  CHECK(parse_ok({"--rate-limit", "2.5/s"}).rate_limit == 2.5);
  const RefusedArgs cases[] = {
      {{"--max-connections-per-ip", "abc"}, "--max-connections-per-ip abc"},
      {{"--max-connections-per-ip", "-1"}, "--max-connections-per-ip"},
      {{"--client-ipv6-prefix", "200"}, "from 32 to 128"},
      {{"--client-ipv6-prefix", "31"}, "--client-ipv6-prefix"},
      {{"--rate-limit", "0/s"}, "above 0"},
      {{"--rate-limit", "abc"}, "--rate-limit abc"},
      {{"--rate-limit", "5/m"}, "--rate-limit"},
      {{"--rate-limit", "/s"}, "--rate-limit"},
      {{"--rate-limit", "-5/s"}, "--rate-limit"},
      {{"--rate-limit", "nan"}, "--rate-limit"},
      {{"--rate-limit", "inf"}, "--rate-limit"},
      {{"--rate-limit", "2e6"}, "--rate-limit"},
      {{"--rate-limit", ""}, "--rate-limit"},
      {{"--rate-burst", "0", "--rate-limit", "1"}, "--rate-burst"},
      {{"--rate-burst", "4"}, "needs --rate-limit"},
      {{"--rate-limit-clients", "1"}, "--rate-limit-clients"},
  };
  check_refused(cases);
}

TEST_CASE("demo options: --defer-accept takes a duration above 0 up to an hour") {
  CHECK(parse_ok({}).defer_accept == netloop::Duration::zero());  // off: accept at the handshake
  CHECK(parse_ok({"--defer-accept", "5s"}).defer_accept == std::chrono::seconds(5));
  CHECK(parse_ok({"--defer-accept=2.5"}).defer_accept == std::chrono::milliseconds(2500));
  CHECK(parse_ok({"--defer-accept", "3600"}).defer_accept == std::chrono::seconds(3600));
  const RefusedArgs cases[] = {
      {{"--defer-accept", "0"}, "--defer-accept 0: expected a duration above 0"},
      {{"--defer-accept", "-1"}, "--defer-accept -1"},
      {{"--defer-accept", "abc"}, "--defer-accept abc"},
      {{"--defer-accept", "3601"}, "--defer-accept 3601: expected at most an hour"},
      {{"--defer-accept"}, "--defer-accept"},
  };
  check_refused(cases);
}
