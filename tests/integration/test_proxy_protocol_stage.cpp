// The listeners' PROXY protocol stage over real loopback sockets: the header read before
// on_open (and before TLS), its source as the peer address, the bytes after it handed on
// untouched, and every way a connection is refused there (untrusted peer, hostile header,
// no header, too slow) closed without the handler ever opening.
#include "netloop/proxy_protocol.hpp"
#include "netloop/proxy_protocol_options.hpp"
#include "support.hpp"

#include <arpa/inet.h>

#ifdef NETLOOP_TEST_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "netloop/tls.hpp"
#include "test_pki.hpp"
#endif

using namespace nltest;
using namespace netloop;

namespace {

// --- Headers ---------------------------------------------------------------------------

std::string v1(std::string_view line) { return std::string(line); }

constexpr char kSig[] = "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A";
std::string signature() { return std::string(kSig, 12); }

void put16(std::string& s, size_t v) {
  s += char((v >> 8) & 0xff);
  s += char(v & 0xff);
}

// A v2 header: version/command byte, family/transport byte, then `body` (addresses and
// TLVs), with the length field `length` (default: the body's).
std::string v2(uint8_t ver_cmd, uint8_t fam, std::string_view body, long length = -1) {
  std::string s = signature();
  s += char(ver_cmd);
  s += char(fam);
  put16(s, length < 0 ? body.size() : size_t(length));
  s += body;
  return s;
}

std::string inet4_block(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  std::string b(12, '\0');
  ::inet_pton(AF_INET, src, b.data());
  ::inet_pton(AF_INET, dst, b.data() + 4);
  b[8] = char(sport >> 8), b[9] = char(sport & 0xff);
  b[10] = char(dport >> 8), b[11] = char(dport & 0xff);
  return b;
}

std::string inet6_block(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  std::string b(36, '\0');
  ::inet_pton(AF_INET6, src, b.data());
  ::inet_pton(AF_INET6, dst, b.data() + 16);
  b[32] = char(sport >> 8), b[33] = char(sport & 0xff);
  b[34] = char(dport >> 8), b[35] = char(dport & 0xff);
  return b;
}

std::string tlv(uint8_t type, std::string_view value) {
  std::string s(1, char(type));
  put16(s, value.size());
  s += value;
  return s;
}

// A PROXY command over TCP/IPv4 from 192.0.2.7:40000, with an ALPN TLV.
std::string good_v2() {
  return v2(0x21, 0x11, inet4_block("192.0.2.7", 40000, "198.51.100.1", 443) + tlv(0x01, "h2"));
}

// --- What the server's handlers saw ----------------------------------------------------------

struct Seen {
  std::atomic<int> created{0}, opened{0}, closed{0};
  std::mutex m;
  std::vector<Address> peers;
  std::vector<int> versions;  // the header's version, 0 when proxy_header() was null
  std::vector<std::string> alpns;
  std::vector<std::string> tls_versions;

  Address peer(size_t i) {
    std::lock_guard lock(m);
    return i < peers.size() ? peers[i] : Address();
  }
};

class Recorder final : public StreamHandler {
 public:
  explicit Recorder(std::shared_ptr<Seen> s) : s_(std::move(s)) { ++s_->created; }
  void on_open(Connection& c) override {
    std::lock_guard lock(s_->m);
    s_->peers.push_back(c.peer_address());
    const proxy_protocol::Header* h = c.proxy_header();
    s_->versions.push_back(h ? h->version : 0);
    s_->alpns.push_back(h ? h->alpn : "");
#ifdef NETLOOP_TEST_TLS
    s_->tls_versions.push_back(c.tls() ? std::string(c.tls()->version) : "");
#endif
    ++s_->opened;
  }
  void on_data(Connection& c, Buffer& in) override {
    c.send(in.view());
    in.consume(in.size());
  }
  void on_close(Connection&, const CloseInfo&) override { ++s_->closed; }

 private:
  std::shared_ptr<Seen> s_;
};

struct ProxyServer {
  std::shared_ptr<Seen> seen = std::make_shared<Seen>();
  ServerThread thread;

  explicit ProxyServer(ProxyProtocolOptions po = {}, Address at = Address::ipv4_loopback(0),
                  std::shared_ptr<TlsServerContext> tls = nullptr) {
    ServerThread::Config cfg;
    cfg.address = at;
    cfg.factory = [s = seen] { return std::make_unique<Recorder>(s); };
    cfg.options.proxy_protocol = std::make_shared<ProxyProtocolOptions>(std::move(po));
    cfg.options.tls = std::move(tls);
    auto ec = thread.start(cfg);
    REQUIRE_MESSAGE(!ec, ec.message());
  }
  const Address& address() const { return thread.address(); }
  ProxyProtocolStats proxy_stats() { return thread.stats().proxy_protocol; }
};

// Sends `bytes` in one send() (one segment on loopback) and expects the echo of `payload`.
std::string send_and_echo(const Address& at, std::string_view bytes, size_t payload_size) {
  Sock s = connect_to(at, {.timeout = 5s});
  REQUIRE(s.valid());
  REQUIRE(send_all(s.get(), bytes));
  return recv_exact(s.get(), payload_size);
}

bool closed_by_server(Ending e) { return e == Ending::eof || e == Ending::reset; }

}  // namespace

TEST_CASE("PROXY v1 and v2 headers followed by the payload in the same segment") {
  ProxyServer server;
  const std::string payload = "hello after the header";

  SUBCASE("v1") {
    std::string bytes = v1("PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n") + payload;
    CHECK(send_and_echo(server.address(), bytes, payload.size()) == payload);
    REQUIRE(wait_until([&] { return server.seen->opened == 1; }, 5s));
    CHECK(server.seen->peer(0).to_string() == "192.0.2.7:40000");
    std::lock_guard lock(server.seen->m);
    CHECK(server.seen->versions[0] == 1);
  }
  SUBCASE("v2 with a TLV") {
    CHECK(send_and_echo(server.address(), good_v2() + payload, payload.size()) == payload);
    REQUIRE(wait_until([&] { return server.seen->opened == 1; }, 5s));
    CHECK(server.seen->peer(0).to_string() == "192.0.2.7:40000");
    std::lock_guard lock(server.seen->m);
    CHECK(server.seen->versions[0] == 2);
    CHECK(server.seen->alpns[0] == "h2");
  }
  CHECK(server.proxy_stats().accepted == 1);
  CHECK(server.proxy_stats().invalid == 0);
}

TEST_CASE("PROXY v2 over IPv6 arriving one byte at a time") {
  ProxyServer server({}, Address::ipv6_loopback(0));
  std::string header = v2(0x21, 0x21, inet6_block("2001:db8::7", 1234, "2001:db8::1", 443) +
                                          tlv(0x02, "example.test") + tlv(0x04, "\0\0\0"));
  const std::string payload = "payload";
  Sock s = connect_to(server.address(), {.timeout = 5s});
  REQUIRE(s.valid());
  int one = 1;
  ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  for (size_t i = 0; i + 1 < header.size(); ++i) {
    REQUIRE(send_all(s.get(), std::string_view(&header[i], 1)));
    std::this_thread::sleep_for(2ms);
  }
  std::this_thread::sleep_for(50ms);
  CHECK(server.seen->opened == 0);  // not before the whole header
  REQUIRE(send_all(s.get(), std::string_view(&header.back(), 1)));
  std::this_thread::sleep_for(20ms);  // the payload in a segment of its own
  REQUIRE(send_all(s.get(), payload));
  CHECK(recv_exact(s.get(), payload.size()) == payload);
  REQUIRE(wait_until([&] { return server.seen->opened == 1; }, 5s));
  CHECK(server.seen->peer(0).to_string() == "[2001:db8::7]:1234");
  CHECK(server.proxy_stats().accepted == 1);
}

TEST_CASE("PROXY LOCAL and UNKNOWN keep the socket's own peer") {
  ProxyServer server;
  const std::string payload = "local";
  std::string header;
  SUBCASE("v2 LOCAL") { header = v2(0x20, 0x00, ""); }
  SUBCASE("v2 LOCAL with addresses") {
    header = v2(0x20, 0x11, inet4_block("192.0.2.7", 40000, "198.51.100.1", 443));
  }
  SUBCASE("v1 UNKNOWN") { header = "PROXY UNKNOWN\r\n"; }
  Sock s = connect_to(server.address(), {.timeout = 5s});
  REQUIRE(s.valid());
  Address mine = Address::local_of(s.get(), Address());
  REQUIRE(send_all(s.get(), header + payload));
  CHECK(recv_exact(s.get(), payload.size()) == payload);
  REQUIRE(wait_until([&] { return server.seen->opened == 1; }, 5s));
  CHECK(server.seen->peer(0) == mine);
  std::lock_guard lock(server.seen->m);
  CHECK(server.seen->versions[0] != 0);  // the header is still there for the handler
}

TEST_CASE("PROXY: a peer outside the trusted networks is closed before any handler exists") {
  ProxyProtocolOptions po;
  po.trusted = {*Cidr::parse("10.0.0.0/8")};
  ProxyServer server(po);
  const size_t fds_before = open_fds();
  {
    Sock s = connect_to(server.address(), {.timeout = 5s});
    REQUIRE(s.valid());
    send_all(s.get(), good_v2() + "payload");  // may fail: the server may have closed already
    CHECK(closed_by_server(wait_end(s.get(), 5s)));
  }
  REQUIRE(wait_until([&] { return server.proxy_stats().untrusted == 1; }, 5s));
  CHECK(server.seen->created == 0);
  CHECK(server.seen->opened == 0);
  CHECK(server.proxy_stats().accepted == 0);
  CHECK(server.thread.connection_count() == 0);
  CHECK(open_fds() == fds_before);
}

TEST_CASE("PROXY: a silent connection times out while another is served") {
  ProxyProtocolOptions po;
  po.header_timeout = milliseconds(300);
  ProxyServer server(po);
  Sock silent = connect_to(server.address(), {.timeout = 5s});
  REQUIRE(silent.valid());
  Sock partial = connect_to(server.address(), {.timeout = 5s});
  REQUIRE(partial.valid());
  REQUIRE(send_all(partial.get(), good_v2().substr(0, 20)));  // a header never finished

  const std::string payload = "served meanwhile";
  CHECK(send_and_echo(server.address(), good_v2() + payload, payload.size()) == payload);

  CHECK(closed_by_server(wait_end(silent.get(), 5s)));
  CHECK(closed_by_server(wait_end(partial.get(), 5s)));
  REQUIRE(wait_until([&] { return server.proxy_stats().timeouts == 2; }, 5s));
  CHECK(server.seen->opened == 1);
  CHECK(server.proxy_stats().accepted == 1);
  REQUIRE(wait_until([&] { return server.seen->closed == 1; }, 5s));
  CHECK(server.seen->closed == 1);  // only the one that opened hears a close
}

// Linux: a listener expecting headers accepts a connection once its first bytes have come
// (TCP_DEFER_ACCEPT for the header timeout) and reads the header at once.
TEST_CASE("PROXY: the listener accepts once the header has come, unless told not to"
#ifndef TCP_DEFER_ACCEPT
          * doctest::skip(true)
#endif
) {
  ProxyProtocolOptions po;
  bool defer = true;
  SUBCASE("deferred (the default)") {}
  SUBCASE("not deferred") {
    po.defer_accept = false;
    defer = false;
  }
  ProxyServer server(po);
  Sock silent = connect_to(server.address(), {.timeout = 5s});
  REQUIRE(silent.valid());
  if (defer) {
    std::this_thread::sleep_for(300ms);
    CHECK(server.thread.stats().accepted.get() == 0);
  } else {
    REQUIRE(wait_until([&] { return server.thread.stats().accepted.get() == 1; }, 5s));
  }
  const std::string payload = "after a pause";
  REQUIRE(send_all(silent.get(), good_v2() + payload));
  CHECK(recv_exact(silent.get(), payload.size()) == payload);
  CHECK(server.thread.stats().accepted.get() == 1);
  CHECK(server.proxy_stats().accepted == 1);
  CHECK(server.seen->peer(0).to_string() == "192.0.2.7:40000");
}

TEST_CASE("PROXY: hostile headers are closed unopened and the listener serves on") {
  struct Case {
    const char* name;
    std::string bytes;
  };
  const std::string inet = inet4_block("192.0.2.7", 40000, "198.51.100.1", 443);
  std::string bad_sig = good_v2();
  bad_sig[7] = 'X';
  const std::vector<Case> cases = {
      {"bad signature", bad_sig + "payload"},
      {"version 3", v2(0x31, 0x11, inet) + "payload"},
      {"length past the cap", v2(0x21, 0x11, inet, 0xFFFF) + std::string(200, 'x')},
      {"address block shorter than its family", v2(0x21, 0x11, inet.substr(0, 8)) + "payload"},
      {"TLV longer than the header",
       v2(0x21, 0x11, inet + tlv(0x02, "example.test").substr(0, 6)) + "payload"},
      {"v1 without CRLF (LF only)", "PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\npayload"},
      {"v1 without CRLF within 107 bytes", "PROXY UNKNOWN " + std::string(120, 'x')},
      {"v1 with a bad address", "PROXY TCP4 999.1.1.1 198.51.100.1 40000 443\r\npayload"},
      {"no header at all", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
  };
  ProxyServer server;
  // The first connection costs the listener's side a reserve descriptor or so: count after.
  const std::string warm = "warm";
  REQUIRE(send_and_echo(server.address(), good_v2() + warm, warm.size()) == warm);
  REQUIRE(wait_until([&] { return server.thread.connection_count() == 0; }, 5s));
  const size_t fds_before = open_fds();

  for (const auto& c : cases) {
    CAPTURE(c.name);
    Sock s = connect_to(server.address(), {.timeout = 5s});
    REQUIRE(s.valid());
    send_all(s.get(), c.bytes);
    CHECK(closed_by_server(wait_end(s.get(), 5s)));
  }
  REQUIRE(wait_until([&] { return server.proxy_stats().invalid == cases.size(); }, 5s));
  CHECK(server.seen->opened == 1);  // the warm-up only
  CHECK(server.seen->closed == 1);

  const std::string payload = "still serving";
  CHECK(send_and_echo(server.address(), good_v2() + payload, payload.size()) == payload);
  CHECK(server.seen->peer(1).to_string() == "192.0.2.7:40000");
  REQUIRE(wait_until([&] { return server.thread.connection_count() == 0; }, 5s));
  CHECK(server.seen->created == server.seen->closed + int(cases.size()));
  CHECK(open_fds() == fds_before);
}

#ifdef NETLOOP_TEST_TLS
TEST_CASE("PROXY header followed at once by a TLS ClientHello") {
  TempDir dir{"netloop-proxy-tls"};
  TestPki pki{dir.path()};
  TestCertificate leaf = pki.issue("leaf", {"127.0.0.1"});
  TlsServerOptions so;
  so.certificates = {{leaf.cert, leaf.key}};
  std::string why;
  auto ctx = TlsServerContext::create(so, &why);
  REQUIRE_MESSAGE(ctx, why);
  ProxyServer server({}, Address::ipv4_loopback(0), *ctx);

  // The client's first flight is made in memory, so that the header and the ClientHello
  // leave in one send().
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(cctx, pki.ca_file().c_str(), nullptr);
  SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, nullptr);
  SSL* ssl = SSL_new(cctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  SSL_set_connect_state(ssl);
  SSL_set1_host(ssl, "127.0.0.1");
  Sock s = connect_to(server.address(), {.timeout = 5s});
  REQUIRE(s.valid());
  auto flush = [&](std::string prefix) {
    char buf[16384];
    int n;
    while ((n = BIO_read(out, buf, sizeof buf)) > 0) prefix.append(buf, size_t(n));
    return prefix.empty() || send_all(s.get(), prefix);
  };
  auto pump = [&] {  // one read from the socket into the session
    char buf[16384];
    ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
    if (n <= 0) return false;
    BIO_write(in, buf, int(n));
    return true;
  };
  CHECK(SSL_do_handshake(ssl) != 1);
  REQUIRE(flush(good_v2()));  // the header and the ClientHello in one segment
  int r;
  while ((r = SSL_do_handshake(ssl)) != 1) {
    REQUIRE(SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ);
    REQUIRE(flush(""));
    REQUIRE_MESSAGE(pump(), "the server closed during the handshake");
  }
  REQUIRE(flush(""));
  const std::string payload = "over TLS";
  REQUIRE(SSL_write(ssl, payload.data(), int(payload.size())) == int(payload.size()));
  REQUIRE(flush(""));
  std::string echoed;
  char buf[256];
  while (echoed.size() < payload.size()) {
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n > 0) {
      echoed.append(buf, size_t(n));
      continue;
    }
    REQUIRE(SSL_get_error(ssl, n) == SSL_ERROR_WANT_READ);
    REQUIRE(pump());
  }
  CHECK(echoed == payload);
  SSL_free(ssl);
  SSL_CTX_free(cctx);
  REQUIRE(wait_until([&] { return server.seen->opened == 1; }, 5s));
  CHECK(server.seen->peer(0).to_string() == "192.0.2.7:40000");
  std::lock_guard lock(server.seen->m);
  CHECK(!server.seen->tls_versions[0].empty());
}
#endif

namespace {

// Echo that keeps reading paused for a moment after on_open: bytes that came with the
// header must wait for it, not be lost or delivered early.
class LateReader final : public StreamHandler {
 public:
  void on_open(Connection& c) override {
    c.pause_reading();
    c.start_timer(50ms, Duration::zero(), [](Connection& conn) { conn.resume_reading(); });
  }
  void on_data(Connection& c, Buffer& in) override {
    c.send(in.view());
    in.consume(in.size());
  }
  void on_peer_shutdown(Connection& c, Buffer& in) override {
    c.send(in.view());
    in.consume(in.size());
    c.close();
  }
};

}  // namespace

TEST_CASE("PROXY: bytes read with the header reach a handler that paused, then the end") {
  ServerThread srv;
  ServerThread::Config cfg;
  cfg.factory = [] { return std::make_unique<LateReader>(); };
  cfg.options.proxy_protocol = std::make_shared<ProxyProtocolOptions>();
  REQUIRE(!srv.start(cfg));
  for (size_t size : {size_t(1), size_t(300), size_t(100 * KiB)}) {
    CAPTURE(size);
    Sock s = connect_to(srv.address(), {.timeout = 5s});
    REQUIRE(s.valid());
    std::string payload = random_bytes(size, size);
    // Header, payload and the end of the stream together: one segment when it fits.
    Exchange ex = exchange(s.get(), good_v2() + payload, true, 0, true, size);
    CHECK(ex.error == 0);
    CHECK(ex.eof);
    CHECK(diff_bytes(ex.received, payload) == "");
    // Without an end after them: nothing in the socket announces those bytes.
    Sock t = connect_to(srv.address(), {.timeout = 5s});
    REQUIRE(t.valid());
    Exchange open_ex = exchange(t.get(), good_v2() + payload, false, payload.size(), false, size);
    CHECK(open_ex.error == 0);
    CHECK_FALSE(open_ex.timed_out);
    CHECK(diff_bytes(open_ex.received, payload) == "");
  }
}
