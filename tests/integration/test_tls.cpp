// TLS over real loopback sockets: netloop's TLS server and client together, and
// raw OpenSSL clients (blocking, on a thread of their own) for what netloop's
// client does not do on purpose (TLS 1.2 only, session resumption,
// renegotiation, truncation, hostile bytes). The certificates are made at run
// time (test_pki.hpp).
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "netloop/connector.hpp"
#include "netloop/server.hpp"

#include <csignal>
#include "netloop/tls.hpp"
#include "support.hpp"
#include "test_pki.hpp"

using namespace nltest;
using namespace netloop;

namespace {

struct Pki {
  TempDir dir{"netloop-tls"};
  TestPki pki{dir.path()};
  TestCertificate leaf = pki.issue("leaf", {"localhost", "127.0.0.1", "::1"});
};

std::shared_ptr<TlsServerContext> server_ctx(TlsServerOptions o) {
  std::string why;
  auto c = TlsServerContext::create(o, &why);
  REQUIRE_MESSAGE(c, why);
  return *c;
}

std::shared_ptr<TlsServerContext> server_ctx(const TestCertificate &cert,
                                             Duration handshake_timeout = seconds(10)) {
  TlsServerOptions o;
  o.certificates = {{cert.cert, cert.key}};
  o.alpn = {"http/1.1"};
  o.handshake_timeout = handshake_timeout;
  return server_ctx(o);
}

std::shared_ptr<TlsClientContext> client_ctx(const std::string &ca,
                                             std::vector<std::string> alpn = {}) {
  std::string why;
  TlsClientOptions o;
  o.ca_file = ca;
  o.alpn = std::move(alpn);
  auto c = TlsClientContext::create(o, &why);
  REQUIRE_MESSAGE(c, why);
  return *c;
}

// What the server's handlers heard, across connections.
struct ServerLog {
  int opens = 0;
  int closes = 0;
  std::vector<CloseInfo> infos;
  std::string received;
  std::string version, alpn, sni;
};

// Echoes, and keeps a journal.
class LoggingEcho final : public StreamHandler {
 public:
  explicit LoggingEcho(ServerLog &log) : log_(log) {}
  void on_open(Connection &c) override {
    ++log_.opens;
    if (const TlsInfo *t = c.tls()) {
      log_.version = std::string(t->version);
      log_.alpn = std::string(t->alpn);
      log_.sni = std::string(t->server_name);
    }
  }
  void on_data(Connection &c, Buffer &in) override {
    log_.received.append(in.view());
    c.send(in.view());
    in.consume(in.size());
  }
  void on_close(Connection &, const CloseInfo &info) override {
    ++log_.closes;
    log_.infos.push_back(info);
  }

 private:
  ServerLog &log_;
};

std::unique_ptr<TcpListener> tls_listener(EventLoop &loop, std::shared_ptr<TlsServerContext> tls,
                                          ServerLog &log,
                                          const Address &at = Address::ipv4_loopback(0)) {
  ListenerOptions lo;
  lo.tls = std::move(tls);
  auto l = TcpListener::listen(
      loop, at, [&log] { return std::make_unique<LoggingEcho>(log); }, lo);
  REQUIRE_MESSAGE(l, l.error().message());
  return std::move(*l);
}

// A netloop client: sends `payload`, reads the echo back whole, closes.
struct ClientLog {
  int opens = 0;
  int closes = 0;
  CloseInfo info{CloseReason::local, {}};
  std::string echoed;
  std::string version, alpn;
  bool resumed = false;
  bool peer_ended = false;
};

class EchoClient final : public StreamHandler {
 public:
  EchoClient(ClientLog &log, std::string payload) : log_(log), payload_(std::move(payload)) {}
  void on_open(Connection &c) override {
    ++log_.opens;
    if (const TlsInfo *t = c.tls()) {
      log_.version = std::string(t->version);
      log_.alpn = std::string(t->alpn);
      log_.resumed = t->resumed;
    }
    if (!payload_.empty()) c.send(payload_);
  }
  void on_data(Connection &c, Buffer &in) override {
    log_.echoed.append(in.view());
    in.consume(in.size());
    if (!payload_.empty() && log_.echoed.size() >= payload_.size()) c.close();
  }
  void on_peer_shutdown(Connection &c, Buffer &in) override {
    log_.echoed.append(in.view());
    in.consume(in.size());
    log_.peer_ended = true;
    c.close();
  }
  void on_close(Connection &, const CloseInfo &info) override {
    ++log_.closes;
    log_.info = info;
  }

 private:
  ClientLog &log_;
  std::string payload_;
};

netloop::ConnectOptions tls_connect(std::shared_ptr<TlsClientContext> tls, std::string name = {}) {
  netloop::ConnectOptions o;
  o.tls = std::move(tls);
  o.tls_server_name = std::move(name);
  return o;
}

// Connects `host`:`port` with `options`, echoes `payload` once and waits for
// the close.
ClientLog echo_once(EventLoop &loop, Connector &connector, std::string_view host, uint16_t port,
                    std::string payload, netloop::ConnectOptions options) {
  ClientLog log;
  connector.connect(host, port, std::make_unique<EchoClient>(log, std::move(payload)),
                    std::move(options));
  REQUIRE(run_until(loop, [&] { return log.closes == 1; }));
  return log;
}

// --- A raw OpenSSL client, blocking, for a thread of its own
// --------------------------------

struct RawTls {
  SSL_CTX *ctx = nullptr;
  SSL *ssl = nullptr;
  Sock sock;

  explicit RawTls(const std::string &ca, int max_version = 0) {
    ctx = SSL_CTX_new(TLS_client_method());
    if (max_version) SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  ~RawTls() {
    if (ssl) SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  // Connects and finishes the handshake (resuming `session` if given).
  bool connect(const Address &a, SSL_SESSION *session = nullptr, int min_version = 0) {
    if (ssl) SSL_free(ssl);
    sock = connect_to(a, {.timeout = 5s});
    if (!sock.valid()) return false;
    ssl = SSL_new(ctx);
    if (min_version) SSL_set_min_proto_version(ssl, min_version);
    SSL_set_fd(ssl, sock.get());
    SSL_set1_host(ssl, "127.0.0.1");
    if (session) SSL_set_session(ssl, session);
    ERR_clear_error();
    return SSL_connect(ssl) == 1;
  }
  bool write(std::string_view s) {
    return SSL_write(ssl, s.data(), int(s.size())) == int(s.size());
  }
  std::string read_exactly(size_t n) {
    std::string out;
    char buf[16384];
    while (out.size() < n) {
      int r = SSL_read(ssl, buf, int(std::min(sizeof buf, n - out.size())));
      if (r <= 0) break;
      out.append(buf, size_t(r));
    }
    return out;
  }
};

// Runs `fn` on a thread while the loop runs, until it returns.
template <class Fn>
void with_client_thread(EventLoop &loop, Fn fn) {
  std::atomic<bool> done{false};
  std::thread t([&] {
    fn();
    done = true;
  });
  bool finished = run_until(
      loop, [&] { return done.load(); }, 20s);
  t.join();
  REQUIRE(finished);
}

}  // namespace

TEST_CASE(
    "tls: netloop client and server echo 1 B to 1 MiB intact on every "
    "backend") {
  Pki p;
  for (const auto &backend : usable_backends()) {
    CAPTURE(backend);
    auto loop = make_loop(backend);
    ServerLog slog;
    auto listener = tls_listener(*loop, server_ctx(p.leaf), slog);
    Connector connector(*loop);
    auto tls = client_ctx(p.pki.ca_file(), {"h2", "http/1.1"});
    for (size_t n : {size_t(1), size_t(16383), size_t(16384), size_t(16385), MiB}) {
      CAPTURE(n);
      ClientLog clog;
      std::string payload = random_bytes(n, n);
      connector.connect("127.0.0.1", listener->local_address().port(),
                        std::make_unique<EchoClient>(clog, payload), tls_connect(tls));
      REQUIRE(run_until(*loop, [&] { return clog.closes == 1; }));
      CHECK(clog.opens == 1);
      CHECK(clog.info.reason == CloseReason::local);
      CHECK(clog.echoed == payload);
      CHECK(clog.version == "TLSv1.3");
      CHECK(clog.alpn == "http/1.1");  // the server's one protocol, though h2 came first
      CHECK(clog.resumed == (n != 1));  // the first connection's ticket is used by the next
    }
    // The server heard every client's close_notify as an orderly end.
    REQUIRE(run_until(*loop, [&] { return slog.closes == 5; }));
    for (const auto &info : slog.infos) CHECK(info.reason == CloseReason::peer);
    CHECK(slog.version == "TLSv1.3");
    CHECK(slog.alpn == "http/1.1");
    CHECK(listener->stats().accepted == 5);
  }
}

TEST_CASE(
    "tls: IPv6 and a name: the certificate is checked against what was "
    "asked for") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto listener = tls_listener(*loop, server_ctx(p.leaf), slog);
  Connector connector(*loop);
  auto tls = client_ctx(p.pki.ca_file());
  ClientLog clog = echo_once(*loop, connector, "localhost", listener->local_address().port(),
                             "by name", tls_connect(tls));
  CHECK(clog.echoed == "by name");

  Sock probe(::socket(AF_INET6, SOCK_STREAM, 0));
  Address any6 = Address::ipv6_loopback(0);
  if (probe.valid() && ::bind(probe.get(), any6.sockaddr_ptr(), any6.length()) == 0) {
    ServerLog slog6;
    auto l6 = tls_listener(*loop, server_ctx(p.leaf), slog6, Address::ipv6_loopback(0));
    ClientLog c6 =
        echo_once(*loop, connector, "::1", l6->local_address().port(), "v6", tls_connect(tls));
    CHECK(c6.echoed == "v6");
  }
}

TEST_CASE("tls: a client refuses an untrusted, expired or misnamed certificate") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto ctx = server_ctx(p.leaf);
  auto listener = tls_listener(*loop, ctx, slog);
  Connector connector(*loop);
  uint16_t port = listener->local_address().port();
  std::shared_ptr<TlsServerContext> refused_by = ctx;  // whose handshake fails
  ServerLog slog2;
  std::unique_ptr<TcpListener> l2;  // outlives the subcase: its failure is counted below

  SUBCASE("untrusted") {
    ClientLog clog = echo_once(*loop, connector, "127.0.0.1", port, "x",
                               tls_connect(client_ctx(p.pki.other_ca_file())));
    CHECK(clog.opens == 0);
    CHECK(clog.info.reason == CloseReason::connect_failed);
    CHECK(clog.info.error == TlsErrc::certificate_invalid);
    CHECK(clog.info.text.find("certificate verify failed") != std::string::npos);
  }
  SUBCASE("the wrong name") {
    ClientLog clog = echo_once(*loop, connector, "127.0.0.1", port, "x",
                               tls_connect(client_ctx(p.pki.ca_file()), "elsewhere.test"));
    CHECK(clog.opens == 0);
    CHECK(clog.info.reason == CloseReason::connect_failed);
    CHECK(clog.info.error == TlsErrc::host_mismatch);
  }
  SUBCASE("expired") {
    TestCertificate old = p.pki.issue("expired", {"127.0.0.1"}, -1);
    refused_by = server_ctx(old);
    l2 = tls_listener(*loop, refused_by, slog2);
    ClientLog clog = echo_once(*loop, connector, "127.0.0.1", l2->local_address().port(), "x",
                               tls_connect(client_ctx(p.pki.ca_file())));
    CHECK(clog.info.error == TlsErrc::certificate_invalid);
    CHECK(clog.info.text.find("expired") != std::string::npos);
  }
  // The server's handlers never heard of the failed handshakes.
  REQUIRE(run_until(*loop, [&] { return refused_by->stats().handshake_failures >= 1; }));
  loop->run_once(10);
  CHECK(slog.opens == 0);
  CHECK(slog.closes == 0);
  CHECK(loop->stats().connections_open == 0);
}

TEST_CASE(
    "tls: a handshake that never finishes is closed at the timeout; "
    "others go on") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto ctx = server_ctx(p.leaf, milliseconds(300));
  auto listener = tls_listener(*loop, ctx, slog);
  const Address at = listener->local_address();
  size_t fds_before = open_fds();

  std::vector<Sock> silent;
  for (int i = 0; i < 20; ++i) silent.push_back(connect_to(at, {.timeout = 5s}));
  // Half a ClientHello: a record header that promises more than ever comes.
  Sock half = connect_to(at, {.timeout = 5s});
  const unsigned char partial[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
                                   0x00, 0x01, 0xfc, 0x03, 0x03};
  REQUIRE(::send(half.get(), partial, sizeof partial, MSG_NOSIGNAL) == ssize_t(sizeof partial));

  // A real client is served meanwhile.
  Connector connector(*loop);
  ClientLog clog = echo_once(*loop, connector, "127.0.0.1", at.port(), "still here",
                             tls_connect(client_ctx(p.pki.ca_file())));
  CHECK(clog.echoed == "still here");

  REQUIRE(run_until(
      *loop, [&] { return ctx->stats().handshake_timeouts == 21; }, 5s));
  loop->run_once(10);
  // Each was closed by the server: the client reads the end of the stream (or
  // an alert).
  for (auto *s : {&silent[0], &silent[19], &half}) {
    set_nonblocking(s->get());
    char buf[256];
    ssize_t r;
    while ((r = ::recv(s->get(), buf, sizeof buf, 0)) > 0) {
    }
    CHECK(r == 0);
  }
  CHECK(slog.opens == 1);  // only the real client
  CHECK(listener->connection_count() == 0);
  silent.clear();
  half.reset();
  CHECK(open_fds() <= fds_before);
}

TEST_CASE(
    "tls: plain HTTP, random bytes and aborted connects fail the "
    "handshake, leak nothing") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto ctx = server_ctx(p.leaf);
  auto listener = tls_listener(*loop, ctx, slog);
  const Address at = listener->local_address();
  loop->run_once(0);
  size_t fds_before = open_fds();

  std::string noise = random_bytes(4096, 7);
  noise[0] = 'Z';  // not a handshake record's first byte
  std::string bad_hello("\x16\x03\x01\x00\x40", 5);
  bad_hello.append(random_bytes(64, 8));
  for (const std::string &junk :
       {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), noise, bad_hello}) {
    Sock s = connect_to(at, {.timeout = 5s});
    ::send(s.get(), junk.data(), junk.size(), MSG_NOSIGNAL);
    std::atomic<bool> closed{false};
    std::thread t([&] {
      char buf[512];
      while (::recv(s.get(), buf, sizeof buf, 0) > 0) {
      }
      closed = true;
    });
    bool ok = run_until(
        *loop, [&] { return closed.load(); }, 5s);
    t.join();
    CHECK(ok);
  }
  // Connect and abort (a reset) before, during and after sending a ClientHello.
  for (int i = 0; i < 200; ++i) {
    Sock s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    ::connect(s.get(), at.sockaddr_ptr(), at.length());
    if (i % 2) ::send(s.get(), "\x16\x03\x01\x00\x05hello", 10, MSG_NOSIGNAL);
    linger lg{1, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (i % 10 == 0) loop->run_once(0);
  }
  REQUIRE(run_until(*loop, [&] {
    return listener->connection_count() == 0 && listener->stats().accepted >= 203;
  }));
  CHECK(slog.opens == 0);
  CHECK(slog.closes == 0);
  CHECK(ctx->stats().handshake_failures >= 3);
  CHECK(loop->stats().connections_open == 0);
  CHECK(open_fds() <= fds_before);

  // Handshakes in progress when the listener drains, then goes away: closed,
  // and no handler (none ever opened) hears a word.
  std::vector<Sock> pending;
  for (int i = 0; i < 3; ++i) pending.push_back(connect_to(at, {.timeout = 5s}));
  REQUIRE(run_until(*loop, [&] { return listener->connection_count() == 3; }));
  listener->drain();
  REQUIRE(run_until(*loop, [&] { return listener->connection_count() == 0; }));
  pending.push_back(connect_to(at, {.timeout = 5s}));  // refused: not accepting any more
  ServerLog late;
  auto l2 = tls_listener(*loop, ctx, late);
  for (int i = 0; i < 3; ++i) pending.push_back(connect_to(l2->local_address(), {.timeout = 5s}));
  REQUIRE(run_until(*loop, [&] { return l2->connection_count() == 3; }));
  l2.reset();
  loop->run_once(10);
  CHECK(slog.closes == 0);
  CHECK(late.closes == 0);
  CHECK(late.opens == 0);
}

TEST_CASE("tls: TLS 1.2 and 1.3 sessions resume; renegotiation is refused") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto ctx = server_ctx(p.leaf);
  auto listener = tls_listener(*loop, ctx, slog);
  const Address at = listener->local_address();

  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    CAPTURE(version);
    uint64_t resumed_before = ctx->stats().resumed;
    bool first_ok = false, second_ok = false, reused = false;
    std::string echoed;
    with_client_thread(*loop, [&] {
      RawTls c(p.pki.ca_file(), version);
      first_ok = c.connect(at, nullptr, version);
      if (!first_ok) return;
      c.write("ping");
      echoed = c.read_exactly(4);  // the TLS 1.3 tickets came before the echo
      SSL_SESSION *s = SSL_get1_session(c.ssl);
      SSL_shutdown(c.ssl);
      second_ok = c.connect(at, s, version);
      reused = second_ok && SSL_session_reused(c.ssl) == 1;
      SSL_SESSION_free(s);
    });
    CHECK(first_ok);
    CHECK(echoed == "ping");
    CHECK(second_ok);
    CHECK(reused);
    CHECK(ctx->stats().resumed == resumed_before + 1);
  }

  bool renegotiated = true;
  std::string after;
  with_client_thread(*loop, [&] {
    RawTls c(p.pki.ca_file(), TLS1_2_VERSION);
    if (!c.connect(at)) return;
    renegotiated = SSL_renegotiate(c.ssl) == 1 && SSL_do_handshake(c.ssl) == 1 && c.write("x") &&
                   c.read_exactly(1) == "x" && SSL_renegotiate_pending(c.ssl) == 0;
  });
  CHECK_FALSE(renegotiated);
  // The server is unharmed.
  ClientLog clog;
  Connector connector(*loop);
  connector.connect("127.0.0.1", at.port(), std::make_unique<EchoClient>(clog, "after"),
                    tls_connect(client_ctx(p.pki.ca_file())));
  REQUIRE(run_until(*loop, [&] { return clog.closes == 1; }));
  CHECK(clog.echoed == "after");
}

TEST_CASE("tls: an end without close_notify is reported as truncated") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto listener = tls_listener(*loop, server_ctx(p.leaf), slog);
  with_client_thread(*loop, [&] {
    RawTls c(p.pki.ca_file());
    if (!c.connect(listener->local_address())) return;
    c.write("abc");
    c.read_exactly(3);
    ::shutdown(c.sock.get(), SHUT_WR);  // FIN, no close_notify
  });
  REQUIRE(run_until(*loop, [&] { return slog.closes == 1; }));
  CHECK(slog.received == "abc");
  CHECK(slog.infos[0].reason == CloseReason::error);
  CHECK(slog.infos[0].error == TlsErrc::truncated);
}

TEST_CASE(
    "tls: send_file goes out encrypted, in order after the head, then "
    "close_notify") {
  Pki p;
  TempDir files;
  std::string body = random_bytes(700 * KiB + 3, 99);
  files.write("f.bin", body);
  auto loop = make_loop();

  class FileSender final : public StreamHandler {
   public:
    explicit FileSender(std::string path) : path_(std::move(path)) {}
    void on_open(Connection &c) override {
      c.send_file("HEAD\n", Fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC)), 0,
                  std::filesystem::file_size(path_));
      c.send("TAIL\n");
      c.close();
    }
    void on_data(Connection &, Buffer &in) override { in.consume(in.size()); }

   private:
    std::string path_;
  };
  ListenerOptions lo;
  lo.tls = server_ctx(p.leaf);
  std::string path = (files / "f.bin").string();
  auto l = TcpListener::listen(
      *loop, Address::ipv4_loopback(0), [&] { return std::make_unique<FileSender>(path); }, lo);
  REQUIRE(l);
  Connector connector(*loop);
  ClientLog clog = echo_once(*loop, connector, "127.0.0.1", (*l)->local_address().port(), "",
                             tls_connect(client_ctx(p.pki.ca_file())));
  CHECK(clog.peer_ended);  // the server's close_notify, not a truncation
  CHECK(clog.echoed.size() == body.size() + 10);
  CHECK(clog.echoed == "HEAD\n" + body + "TAIL\n");
}

TEST_CASE(
    "tls: SNI picks the certificate; reload() swaps certificates for new "
    "connections only") {
  Pki p;
  TestCertificate other = p.pki.issue("other", {"other.test"});
  TlsServerOptions o;
  o.certificates = {{p.leaf.cert, p.leaf.key}, {other.cert, other.key}};
  auto ctx = server_ctx(o);
  auto loop = make_loop();
  ServerLog slog;
  auto listener = tls_listener(*loop, ctx, slog);
  uint16_t port = listener->local_address().port();
  Connector connector(*loop);
  auto tls = client_ctx(p.pki.ca_file());

  ClientLog by_sni =
      echo_once(*loop, connector, "127.0.0.1", port, "sni", tls_connect(tls, "other.test"));
  CHECK(by_sni.echoed == "sni");
  CHECK(slog.sni == "other.test");

  // A connection open across the reload keeps working.
  class Holder final : public StreamHandler {
   public:
    Holder(std::string &got, Connection *&conn) : got_(got), conn_(conn) {}
    void on_open(Connection &c) override { conn_ = &c; }
    void on_data(Connection &, Buffer &in) override {
      got_.append(in.view());
      in.consume(in.size());
    }
    void on_close(Connection &, const CloseInfo &) override { conn_ = nullptr; }

   private:
    std::string &got_;
    Connection *&conn_;
  };
  std::string held_got;
  Connection *held = nullptr;  // the open connection, until it closes
  connector.connect("127.0.0.1", port, std::make_unique<Holder>(held_got, held), tls_connect(tls));
  REQUIRE(run_until(*loop, [&] { return held != nullptr; }));

  // The default certificate's files now hold one for another name.
  p.pki.issue("leaf", {"reloaded.test"});
  std::string why;
  REQUIRE_MESSAGE(ctx->reload(&why), why);
  ClientLog fresh =
      echo_once(*loop, connector, "127.0.0.1", port, "new", tls_connect(tls, "reloaded.test"));
  CHECK(fresh.echoed == "new");
  held->send("old");
  REQUIRE(run_until(*loop, [&] { return held_got == "old"; }));

  // A broken file: the reload fails, says why, and the certificates in use
  // stay.
  write_file(p.leaf.cert, "garbage");
  CHECK_FALSE(ctx->reload(&why));
  CHECK(why.find(p.leaf.cert) != std::string::npos);
  ClientLog still =
      echo_once(*loop, connector, "127.0.0.1", port, "still", tls_connect(tls, "reloaded.test"));
  CHECK(still.echoed == "still");
  held->close();
  REQUIRE(run_until(*loop, [&] { return held == nullptr; }));
}

TEST_CASE("tls: contexts say exactly what is wrong with their files") {
  Pki p;
  TestCertificate other = p.pki.issue("other", {"other.test"});
  std::string why;
  TlsServerOptions o;
  auto none = TlsServerContext::create(o, &why);
  CHECK(none.error() == TlsErrc::bad_certificate);

  o.certificates = {{p.dir.str() + "/missing.pem", p.leaf.key}};
  auto missing = TlsServerContext::create(o, &why);
  CHECK(missing.error() == TlsErrc::bad_certificate);
  CHECK(why.find("missing.pem") != std::string::npos);

  o.certificates = {{p.leaf.cert, p.leaf.cert}};
  CHECK(TlsServerContext::create(o, &why).error() == TlsErrc::bad_private_key);

  o.certificates = {{p.leaf.cert, other.key}};
  CHECK(TlsServerContext::create(o, &why).error() == TlsErrc::key_mismatch);
  CHECK(why.find("does not match") != std::string::npos);

  o.certificates = {{p.leaf.cert, p.leaf.key}};
  o.alpn = {std::string(300, 'a')};
  CHECK(TlsServerContext::create(o, &why).error() == TlsErrc::bad_option);

  TlsClientOptions c;
  c.ca_file = p.dir.str() + "/nope.pem";
  CHECK(TlsClientContext::create(c, &why).error() == TlsErrc::bad_ca_file);
  CHECK(why.find("nope.pem") != std::string::npos);
  CHECK(tls_available());
  CHECK(tls_library_version().find("OpenSSL 3") == 0);
}

TEST_CASE("tls: a Server's loops share one context; sessions resume across loops") {
  Pki p;
  auto ctx = server_ctx(p.leaf);
  netloop::ServerOptions so;
  so.threads = 2;
  Server server(so);
  server.add_stream("tls-echo", Address::ipv4_loopback(0), [ctx](EventLoop&, size_t) {
    return StreamService{.factory = [] { return std::make_unique<echo::TcpEchoHandler>(); },
                         .tls = ctx};
  });
  std::string why;
  REQUIRE_MESSAGE(server.start(&why).ok(), why);
  const Address at = server.bound()[0].address;
  std::thread runner([&] { server.run(); });

  // Four client threads at once, each connecting a few times and resuming its session.
  constexpr int kThreads = 4, kRounds = 6;
  std::atomic<int> echoed{0}, resumed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t)
    clients.emplace_back([&, t] {
      RawTls c(p.pki.ca_file());
      SSL_SESSION* session = nullptr;
      for (int i = 0; i < kRounds; ++i) {
        if (!c.connect(at, session)) break;
        if (SSL_session_reused(c.ssl)) ++resumed;
        std::string msg = random_bytes(5000 + size_t(t * 100 + i), uint64_t(t * 10 + i));
        if (c.write(msg) && c.read_exactly(msg.size()) == msg) ++echoed;
        if (session) SSL_SESSION_free(session);
        session = SSL_get1_session(c.ssl);
        SSL_shutdown(c.ssl);
      }
      if (session) SSL_SESSION_free(session);
    });
  for (auto& c : clients) c.join();
  server.stop();
  runner.join();
  CHECK(echoed == kThreads * kRounds);
  CHECK(resumed == kThreads * (kRounds - 1));
  CHECK(ctx->stats().handshakes == uint64_t(kThreads * kRounds));
  CHECK(ctx->stats().resumed == uint64_t(kThreads * (kRounds - 1)));
}

TEST_CASE("tls: mutual TLS: a client presents its certificate when the server asks") {
  Pki p;
  TestCertificate client_cert = p.pki.issue("client", {"client.test"});
  TlsServerOptions so;
  so.certificates = {{p.leaf.cert, p.leaf.key}};
  so.client_ca_file = p.pki.ca_file();
  auto ctx = server_ctx(so);
  auto loop = make_loop();
  ServerLog slog;
  auto listener = tls_listener(*loop, ctx, slog);
  uint16_t port = listener->local_address().port();
  Connector connector(*loop);

  std::string why;
  TlsClientOptions co;
  co.ca_file = p.pki.ca_file();
  co.client_certificate = TlsCertificateFiles{client_cert.cert, client_cert.key};
  auto with_cert = TlsClientContext::create(co, &why);
  REQUIRE_MESSAGE(with_cert, why);
  ClientLog ok = echo_once(*loop, connector, "127.0.0.1", port, "mine", tls_connect(*with_cert));
  CHECK(ok.opens == 1);
  CHECK(ok.echoed == "mine");

  // Without one the server refuses (TLS 1.3: the client learns of it on its first read).
  ClientLog refused = echo_once(*loop, connector, "127.0.0.1", port, "none",
                                tls_connect(client_ctx(p.pki.ca_file())));
  CHECK(refused.echoed.empty());
  CHECK(refused.info.error);
  REQUIRE(run_until(*loop, [&] { return ctx->stats().handshake_failures == 1; }));
  CHECK(slog.opens == 1);
}

TEST_CASE("tls: a TLS 1.3 key update mid-stream: the server answers it and keeps echoing") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto listener = tls_listener(*loop, server_ctx(p.leaf), slog);
  std::string first, second;
  with_client_thread(*loop, [&] {
    RawTls c(p.pki.ca_file());
    if (!c.connect(listener->local_address())) return;
    c.write("before");
    first = c.read_exactly(6);
    // Asks the server to update its keys too: its next write must carry a KeyUpdate.
    if (SSL_key_update(c.ssl, SSL_KEY_UPDATE_REQUESTED) != 1) return;
    std::string big = random_bytes(200 * KiB, 5);
    if (!c.write(big)) return;
    second = c.read_exactly(big.size()) == big ? "intact" : "damaged";
  });
  CHECK(first == "before");
  CHECK(second == "intact");
}

TEST_CASE("tls: writing to a peer that has gone never raises SIGPIPE") {
  // This process ignores SIGPIPE (main.cpp); a server that does not must survive too.
  auto previous = std::signal(SIGPIPE, SIG_DFL);
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto listener = tls_listener(*loop, server_ctx(p.leaf), slog);
  const Address at = listener->local_address();
  with_client_thread(*loop, [&] {
    for (int i = 0; i < 60; ++i) {
      RawTls c(p.pki.ca_file());
      if (!c.connect(at)) return;
      // Data to echo, then gone: sometimes with a reset, sometimes with close_notify and
      // a close over unread data (a reset too), sometimes half-way through its own write.
      c.write(random_bytes(size_t(64 + i * 4096), uint64_t(i)));
      if (i % 3 == 1) SSL_shutdown(c.ssl);
      if (i % 3 != 2) {
        linger lg{1, 0};
        ::setsockopt(c.sock.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      }
      if (i % 2) std::this_thread::sleep_for(2ms);
      c.sock.reset();
    }
  });
  REQUIRE(run_until(*loop, [&] { return slog.closes == 60; }));
  std::signal(SIGPIPE, previous);
}

TEST_CASE("tls: resume_sessions = false makes every connection a full handshake") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto ctx = server_ctx(p.leaf);
  auto listener = tls_listener(*loop, ctx, slog);
  Connector connector(*loop);
  TlsClientOptions co;
  co.ca_file = p.pki.ca_file();
  co.resume_sessions = false;
  std::string why;
  auto tls = TlsClientContext::create(co, &why);
  REQUIRE_MESSAGE(tls, why);
  for (int i = 0; i < 3; ++i) {
    ClientLog c = echo_once(*loop, connector, "127.0.0.1", listener->local_address().port(), "x",
                            tls_connect(*tls));
    CHECK(c.echoed == "x");
    CHECK_FALSE(c.resumed);
  }
  CHECK(ctx->stats().resumed == 0);
  CHECK(ctx->stats().handshakes == 3);
}

TEST_CASE("tls: the server answers a client's close_notify with its own; 1.2 session IDs resume") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;  // LoggingEcho closes when the peer ends (the default on_peer_shutdown)
  auto ctx = server_ctx(p.leaf);
  auto listener = tls_listener(*loop, ctx, slog);
  int second_shutdown = -2;
  bool reused = false;
  with_client_thread(*loop, [&] {
    RawTls c(p.pki.ca_file(), TLS1_2_VERSION);
    SSL_CTX_set_options(c.ctx, SSL_OP_NO_TICKET);  // a session ID, kept by the server
    if (!c.connect(listener->local_address())) return;
    c.write("x");
    c.read_exactly(1);
    SSL_SESSION* s = SSL_get1_session(c.ssl);
    if (SSL_shutdown(c.ssl) == 0) second_shutdown = SSL_shutdown(c.ssl);  // waits for theirs
    reused = c.connect(listener->local_address(), s) && SSL_session_reused(c.ssl) == 1;
    SSL_SESSION_free(s);
  });
  CHECK(second_shutdown == 1);  // the server's close_notify came
  CHECK(reused);
}

TEST_CASE("tls: half a record waiting in OpenSSL's buffer does not spin the loop") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto listener = tls_listener(*loop, server_ctx(p.leaf), slog);
  std::atomic<bool> sent{false}, done{false};
  std::thread t([&] {
    RawTls c(p.pki.ca_file());
    if (c.connect(listener->local_address())) {
      c.write("a whole record");
      // The header of an application-data record of 16 KiB, and nothing more.
      const unsigned char header[] = {0x17, 0x03, 0x03, 0x40, 0x00, 0x01, 0x02};
      ::send(c.sock.get(), header, sizeof header, MSG_NOSIGNAL);
      sent = true;
      while (!done) std::this_thread::sleep_for(5ms);
    }
    sent = true;
  });
  REQUIRE(run_until(*loop, [&] { return sent && slog.received == "a whole record"; }));
  for (int i = 0; i < 5; ++i) loop->run_once(20);  // the header arrives and is taken
  uint64_t before = loop->iterations();
  auto until = SteadyClock::now() + 300ms;
  while (SteadyClock::now() < until) loop->run_once(50);
  uint64_t spent = loop->iterations() - before;
  done = true;
  t.join();
  CHECK(slog.opens == 1);
  CHECK(spent < 60);  // idle: a handful of 50 ms waits; a spinning loop makes thousands
}

TEST_CASE("tls: a close_notify in the same segment as the last data, no FIN, is still seen") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  auto listener = tls_listener(*loop, server_ctx(p.leaf), slog);
  std::string echoed;
  int theirs = -2;
  with_client_thread(*loop, [&] {
    RawTls c(p.pki.ca_file());
    if (!c.connect(listener->local_address())) return;
    int one = 1, zero = 0;
    ::setsockopt(c.sock.get(), IPPROTO_TCP, TCP_CORK, &one, sizeof one);
    c.write("last words");
    SSL_shutdown(c.ssl);  // our close_notify, corked with the data; the socket stays open
    ::setsockopt(c.sock.get(), IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
    echoed = c.read_exactly(10);
    theirs = SSL_shutdown(c.ssl);  // 1 once the server's close_notify came
  });
  CHECK(echoed == "last words");
  CHECK(theirs == 1);
  REQUIRE(run_until(*loop, [&] { return slog.closes == 1; }));
  CHECK(slog.infos[0].reason == CloseReason::peer);
}

TEST_CASE("tls: past the connection limit the refusal is said over TLS, and a silent one goes fast") {
  Pki p;
  auto loop = make_loop();
  class Busy final : public StreamHandler {
   public:
    void on_open(Connection& c) override {
      c.send("busy\n");
      c.close();
    }
    void on_data(Connection&, Buffer& in) override { in.consume(in.size()); }
  };
  ServerLog slog;
  ListenerOptions lo;
  lo.tls = server_ctx(p.leaf);  // handshake timeout 10 s
  lo.limit = std::make_shared<ConnectionLimit>(1);
  lo.refusal_factory = [] { return std::make_unique<Busy>(); };
  auto l = TcpListener::listen(
      *loop, Address::ipv4_loopback(0), [&] { return std::make_unique<LoggingEcho>(slog); }, lo);
  REQUIRE(l);
  const Address at = (*l)->local_address();
  Sock holder = connect_to(at, {.timeout = 5s});  // takes the one slot (handshaking)
  REQUIRE(run_until(*loop, [&] { return (*l)->connection_count() == 1; }));

  Connector connector(*loop);
  ClientLog refused = echo_once(*loop, connector, "127.0.0.1", at.port(), "",
                                tls_connect(client_ctx(p.pki.ca_file())));
  CHECK(refused.opens == 1);
  CHECK(refused.echoed == "busy\n");

  // A refused connection that never says a word is closed within the refusal's 1 s, not
  // the context's 10 s handshake timeout.
  Sock silent = connect_to(at, {.timeout = 5s});
  set_nonblocking(silent.get());
  bool closed = run_until(
      *loop,
      [&] {
        char buf[64];
        return ::recv(silent.get(), buf, sizeof buf, 0) == 0;
      },
      3s);
  CHECK(closed);
  CHECK((*l)->stats().refused == 2);
}

TEST_CASE("tls: a connect whose handshake fails is a failed connect; a keeper keeps backing off") {
  Pki p;
  auto loop = make_loop();
  // A TCP server that accepts and never says a word: every handshake times out.
  struct Silent final : StreamHandler {
    void on_data(Connection &, Buffer &in) override { in.consume(in.size()); }
  };
  auto silent = TcpListener::listen(*loop, Address::ipv4_loopback(0),
                                    [] { return std::make_unique<Silent>(); });
  REQUIRE(silent);
  TlsClientOptions co;
  co.ca_file = p.pki.ca_file();
  co.handshake_timeout = 150ms;  // longer than stable_after below
  std::string why;
  auto tls = TlsClientContext::create(co, &why);
  REQUIRE_MESSAGE(tls, why);
  Connector connector(*loop);
  std::vector<TimePoint> failures;
  struct Kept final : StreamHandler {
    std::vector<TimePoint> &failures;
    explicit Kept(std::vector<TimePoint> &f) : failures(f) {}
    void on_data(Connection &, Buffer &in) override { in.consume(in.size()); }
    void on_close(Connection &c, const CloseInfo &i) override {
      if (i.reason == CloseReason::connect_failed) failures.push_back(c.now());
    }
  };
  ReconnectOptions r;
  r.initial = 20ms;
  r.max = 10s;
  r.jitter = 0;
  r.stable_after = 50ms;
  ConnectId id = connector.keep_connected(
      "127.0.0.1", (*silent)->local_address().port(),
      [&] { return std::make_unique<Kept>(failures); }, r, tls_connect(*tls));
  // 150 ms handshakes after waits of 20, 40, 80, 160 ms...; a backoff reset by each
  // handshake (it lasted past stable_after) would wait 20 ms every time.
  REQUIRE(run_until(*loop, [&] { return failures.size() >= 5; }, 5s));
  connector.cancel(id);
  CHECK(connector.stats().connected.get() == 0);
  CHECK(connector.stats().failed.get() >= 5);
  Duration last_gap = failures[4] - failures[3];
  CHECK(last_gap >= 150ms + 160ms - 20ms);
}

TEST_CASE("tls: ticket keys rotate: an old key's tickets resume for one more period, then not") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  TlsServerOptions so;
  so.certificates = {{p.leaf.cert, p.leaf.key}};
  so.ticket_key_rotation = 300ms;
  auto listener = tls_listener(*loop, server_ctx(so), slog);
  const uint16_t port = listener->local_address().port();
  Connector connector(*loop);
  auto a = client_ctx(p.pki.ca_file());
  auto b = client_ctx(p.pki.ca_file());
  auto once = [&](std::shared_ptr<TlsClientContext> &ctx) {
    return echo_once(*loop, connector, "127.0.0.1", port, "x", tls_connect(ctx));
  };
  CHECK_FALSE(once(a).resumed);  // A's ticket: under the first key
  CHECK(once(a).resumed);
  run_until(*loop, [] { return false; }, 350ms);
  CHECK_FALSE(once(b).resumed);  // B's new ticket comes under a second key
  CHECK(once(a).resumed);        // the first key still reads A's ticket, for one more period
  run_until(*loop, [] { return false; }, 700ms);
  CHECK_FALSE(once(a).resumed);  // every key A's tickets were under is past its two periods
  CHECK(once(a).resumed);
}

TEST_CASE("tls: with mutual TLS a reload forgets the tickets issued before it") {
  Pki p;
  auto loop = make_loop();
  ServerLog slog;
  TestCertificate client_cert = p.pki.issue("client", {"client"});
  TlsServerOptions so;
  so.certificates = {{p.leaf.cert, p.leaf.key}};
  so.client_ca_file = p.pki.ca_file();
  auto ctx = server_ctx(so);
  auto listener = tls_listener(*loop, ctx, slog);
  const uint16_t port = listener->local_address().port();
  Connector connector(*loop);
  TlsClientOptions co;
  co.ca_file = p.pki.ca_file();
  co.client_certificate = TlsCertificateFiles{client_cert.cert, client_cert.key};
  std::string why;
  auto tls = TlsClientContext::create(co, &why);
  REQUIRE_MESSAGE(tls, why);
  auto once = [&] {
    return echo_once(*loop, connector, "127.0.0.1", port, "x", tls_connect(*tls));
  };
  CHECK_FALSE(once().resumed);
  CHECK(once().resumed);
  REQUIRE(ctx->reload(&why));
  CHECK_FALSE(once().resumed);  // verified again under the roots the reload read
  CHECK(once().resumed);
}
