// TLS for stream connections, server and client side, on OpenSSL 3.
//
// TLS is a stage of the transport, not of the handler: a listener given a
// TlsServerContext (ListenerOptions::tls, StreamService::tls), or a connect given a
// TlsClientContext (ConnectOptions::tls), runs the handshake first and only then calls
// the handler's on_open. From there the handler sees the same Connection as over plain
// TCP (send, send_file, shutdown_write, close, backpressure, timers) and plain bytes.
// Handlers never call OpenSSL.
//
//   std::string why;
//   auto tls = TlsServerContext::create({.certificates = {{"cert.pem", "key.pem"}},
//                                        .alpn = {"http/1.1"}}, &why);
//   if (!tls) { fmt::print(stderr, "{}\n", why); return 2; }
//   ListenerOptions lo;  lo.tls = *tls;
//   auto listener = TcpListener::listen(loop, addr, factory, lo);
//
// What the server side does, whatever the options: TLS 1.2 and 1.3 only; AEAD suites
// only (AES-GCM, ChaCha20-Poly1305; no CBC, no RSA key exchange); renegotiation refused;
// session resumption by TLS 1.3 tickets and TLS 1.2 tickets or session IDs, with ticket
// keys made at random per process (kept across reload()); OpenSSL's buffers released
// while a connection is idle; kTLS (the kernel encrypts, and files go out with
// SSL_sendfile) where the kernel and OpenSSL allow it, detected at run time.
//
// Without OpenSSL at build time (-Dtls=disabled) this header still compiles and the
// create() calls fail with TlsErrc::unavailable.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "netloop/clock.hpp"
#include "netloop/result.hpp"

namespace netloop {

// Why a TLS connection or context failed (the error_code's category is tls_category()).
enum class TlsErrc {
  unavailable = 1,      // this build has no TLS (-Dtls=disabled, or no OpenSSL found)
  bad_certificate,      // a certificate file missing, unreadable or not PEM
  bad_private_key,      // a key file missing, unreadable, encrypted or not PEM
  key_mismatch,         // the private key does not belong to the certificate
  bad_ca_file,          // the CA file given to a client cannot be loaded
  bad_option,           // an option OpenSSL refused (an ALPN name too long, say)
  handshake_failed,     // the peer broke off the handshake or spoke something else
  handshake_timeout,    // no finished handshake within handshake_timeout
  certificate_invalid,  // (client) the peer's certificate did not verify: untrusted, expired
  host_mismatch,        // (client) the certificate is valid but not for the name asked for
  truncated,            // the peer's stream ended without close_notify (a truncation attack
                        // or a careless peer: the data may be incomplete)
  protocol_error,       // a bad record, a fatal alert, or anything else OpenSSL rejects
};
const std::error_category& tls_category() noexcept;
inline std::error_code make_error(TlsErrc e) noexcept { return {int(e), tls_category()}; }
inline std::error_code make_error_code(TlsErrc e) noexcept { return make_error(e); }  // for ==

// Whether this build has TLS at all.
bool tls_available() noexcept;
// The TLS library's name and version ("OpenSSL 3.0.19 27 Jan 2026"), or "none".
std::string_view tls_library_version() noexcept;

// A certificate chain (leaf first, PEM) and its private key (PEM, unencrypted).
struct TlsCertificateFiles {
  std::string certificate_chain;
  std::string private_key;
};

struct TlsServerOptions {
  // The first pair is the default; the others are chosen by the name the client sends
  // (SNI), matched against each certificate's names (wildcards as RFC 6125 allows).
  std::vector<TlsCertificateFiles> certificates;
  // Application protocols offered by ALPN, in order of preference ("http/1.1"). A client
  // that offers none of them goes on without ALPN. Empty: no ALPN.
  std::vector<std::string> alpn{};
  // From the accept to a finished handshake; past it the connection is closed.
  Duration handshake_timeout = seconds(10);
  // TLS 1.2 session IDs kept for resumption (the cache is shared by every loop).
  size_t session_cache_size = 20480;
  // Use kTLS when the kernel and OpenSSL allow it.
  bool ktls = true;
  // Mutual TLS: clients must present a certificate issued by these roots (PEM); empty:
  // no client certificate is asked for.
  std::string client_ca_file{};
  // Session tickets are encrypted with random keys made by this process (never stored);
  // each key issues tickets for this long and reads them for as long again.
  Duration ticket_key_rotation = std::chrono::hours(1);
};

struct TlsClientOptions {
  // Trusted roots (PEM); empty: the system's trust store.
  std::string ca_file{};
  // Check the server's certificate and its name. Off only for tests of the failure itself.
  bool verify_peer = true;
  // A certificate to present when the server asks for one.
  std::optional<TlsCertificateFiles> client_certificate{};
  std::vector<std::string> alpn{};  // offered, in order of preference
  Duration handshake_timeout = seconds(10);
  bool ktls = true;
  // Offer the last session each server gave (TLS 1.3 tickets, 1.2 sessions) so the next
  // connection to it resumes; false: every connection makes a full handshake.
  bool resume_sessions = true;
};

// What the handshake settled, for a handler that asks (Connection::tls()).
struct TlsInfo {
  std::string_view version;       // "TLSv1.3"
  std::string_view cipher;        // "TLS_AES_128_GCM_SHA256"
  std::string_view alpn;          // the protocol agreed, or empty
  std::string_view server_name;   // the SNI name the client sent (server side), or empty
  bool resumed = false;           // an abbreviated handshake (session resumed)
  bool ktls_send = false;         // the kernel encrypts what is sent
};

// Counters of one context, shared by every loop that uses it.
struct TlsStats {
  uint64_t handshakes = 0;          // finished handshakes
  uint64_t resumed = 0;             // ...of which resumed a session
  uint64_t handshake_failures = 0;  // broken off, refused, or failed verification
  uint64_t handshake_timeouts = 0;
  uint64_t close_notify_unsent = 0;  // our close_notify found no room in the send buffer
};

class TlsServerContext {
 public:
  // Loads every certificate and key (a key that does not match its certificate is an
  // error). On failure `why` names the file and OpenSSL's reason.
  static Result<std::shared_ptr<TlsServerContext>> create(const TlsServerOptions& options,
                                                          std::string* why = nullptr);
  ~TlsServerContext();

  // Reads the certificate and key files again (SIGHUP): connections accepted from now on
  // use the new ones, connections already open keep theirs, and tickets issued before
  // stay valid (with mutual TLS they do not: the trusted roots may have changed, so
  // every client verifies again). On failure the old certificates stay in use and `why`
  // says what failed. Any thread.
  Result<void> reload(std::string* why = nullptr);

  const TlsServerOptions& options() const noexcept;
  TlsStats stats() const noexcept;
  // Whether the kernel offers kTLS (the "tls" TCP upper-layer protocol): said once in the
  // log when the context is made.
  bool ktls_possible() const noexcept;

  struct Impl;
  const std::shared_ptr<Impl>& impl() const noexcept { return impl_; }

 private:
  explicit TlsServerContext(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

class TlsClientContext {
 public:
  static Result<std::shared_ptr<TlsClientContext>> create(const TlsClientOptions& options,
                                                          std::string* why = nullptr);
  ~TlsClientContext();

  const TlsClientOptions& options() const noexcept;
  TlsStats stats() const noexcept;

  struct Impl;
  const std::shared_ptr<Impl>& impl() const noexcept { return impl_; }

 private:
  explicit TlsClientContext(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace netloop

template <>
struct std::is_error_code_enum<netloop::TlsErrc> : std::true_type {};
