// netloop-load's command line: parsing into LoadOptions, with messages for bad input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "netloop/address.hpp"

namespace netloop::load {

enum class RespCommand : uint8_t { ping, set, get };
const char* to_string(RespCommand c) noexcept;

struct LoadOptions {
  std::string scenario;  // "tcp-echo", "udp-echo", "http" or "resp"
  std::string target_text;  // the target as given (HOST:PORT or the URL), for reports
  // tcp-echo, http and resp: where to connect (a name or a numeric address).
  std::string host;
  uint16_t port = 0;
  Address target;  // udp-echo: the numeric address
  // http: the request.
  std::string path;         // "/index.html?x=1"
  std::string host_header;  // "127.0.0.1:8080"
  bool close = false;       // --close: "Connection: close" on every request
  // tcp-echo and http: TLS (--tls, or an https:// URL), made with a TlsClientContext.
  bool tls = false;
  std::string tls_ca;         // --tls-ca: trusted roots (PEM); empty: the system's store
  std::string tls_sni;        // --tls-sni: the name sent and checked; empty: the host
  bool tls_verify = true;     // --tls-no-verify turns the certificate check off
  bool tls_resume = true;     // --tls-no-resume: a full handshake on every connection
  // resp: what each request is.
  RespCommand command = RespCommand::ping;
  std::string key;
  size_t connections = 0;  // --connections; udp-echo: --clients (one socket each)
  size_t size = 0;        // bytes per message; resp: the value of set (and get's one set)
  double duration = 0;    // measured seconds
  size_t pipeline = 1;    // messages in flight per connection
  double warmup = 0;      // seconds run before measuring
  // udp-echo only:
  double loss_timeout = 0.2;  // seconds without an echo after which a datagram is lost
  double max_loss = 0.01;     // lost fraction of the measured window above which we fail
  bool json = false;
  bool help = false;
  bool version = false;
};

// Upper bounds that keep a typo from exhausting memory; none of them binds a real run.
constexpr size_t kMaxConnections = 1'000'000;
constexpr size_t kMaxMessageSize = 64 * 1024 * 1024;
constexpr size_t kMaxPipeline = 1024;  // IOV_MAX: one writev can carry every message
constexpr double kMaxSeconds = 7 * 24 * 3600;
// udp-echo: every datagram starts with the client id (4 bytes) and its sequence number
// (8 bytes); the largest is what one IPv4 UDP datagram can carry.
constexpr size_t kUdpHeaderBytes = 12;
constexpr size_t kMaxDatagramV4 = 65507;
constexpr size_t kMaxDatagramV6 = 65527;
constexpr size_t kMaxUdpClients = 100'000;
constexpr double kMaxLossTimeout = 60;
// resp: value bytes of set when --size is not given (redis-benchmark's -d default), and
// the key of set and get.
constexpr size_t kDefaultRespSize = 3;
constexpr const char* kDefaultRespKey = "netloop-load:key";
constexpr size_t kMaxRespKey = 1024;

struct ParseOutcome {
  std::optional<LoadOptions> options;  // empty when `error` says what is wrong
  std::string error;
};

ParseOutcome parse_load_options(const std::vector<std::string>& args);
std::string load_usage();

}  // namespace netloop::load
