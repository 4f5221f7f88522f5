// TLS contexts on OpenSSL 3: the server's certificates (several, by SNI), its protocol
// and suite policy, session resumption and reloading; the client's trust store.
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <fstream>
#include <unistd.h>

#include "netloop/log.hpp"
#include "tls/tls_context_impl.hpp"

namespace netloop {
namespace {

// TLS 1.2: ephemeral key exchange and AEAD only (no CBC, no RSA key exchange, no DHE's
// weak groups). TLS 1.3's suites are all AEAD; OpenSSL's default list is kept.
constexpr const char* kTls12Suites =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";
constexpr unsigned char kSessionIdContext[] = "netloop";

// OpenSSL's first queued error in words, the queue emptied.
std::string openssl_reason() {
  unsigned long e = ERR_get_error();
  std::string out;
  if (e) {
    const char* reason = ERR_reason_error_string(e);
    out = reason ? reason : "error " + std::to_string(ERR_GET_REASON(e));
  }
  ERR_clear_error();
  return out.empty() ? "unknown reason" : out;
}

// Names the file when it cannot even be opened: clearer than OpenSSL's "system lib".
std::string file_problem(const std::string& path) {
  if (path.empty()) return "no file given";
  if (::access(path.c_str(), R_OK) != 0) return std::strerror(errno);
  return {};
}

std::error_code failed(std::string* why, TlsErrc code, std::string text) {
  ERR_clear_error();
  if (why) *why = std::move(text);
  return make_error(code);
}

// Never prompts on a terminal for an encrypted key's passphrase: such a key fails to load.
int no_passphrase(char*, int, int, void*) { return 0; }

// Settings both sides share: versions, suites, groups and buffer handling.
std::error_code common_settings(SSL_CTX* ctx, bool ktls, std::string* why) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Suites) != 1 || SSL_CTX_set1_groups_list(ctx, kGroups) != 1)
    return failed(why, TlsErrc::bad_option, "TLS suites refused: " + openssl_reason());
  uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_ENABLE_KTLS
  if (ktls) opts |= SSL_OP_ENABLE_KTLS;
#else
  (void)ktls;
#endif
  SSL_CTX_set_options(ctx, opts);
  // Buffers go back while a connection is idle; a write may return after whole records
  // (the connection keeps the rest), and its retry may come from another address.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Reads take what the socket has (several records per recv), not 5 bytes then a record.
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  return {};
}

std::error_code load_pair(SSL_CTX* ctx, const TlsCertificateFiles& files, std::string* why) {
  if (auto p = file_problem(files.certificate_chain); !p.empty())
    return failed(why, TlsErrc::bad_certificate,
                  "cannot load the certificate " + files.certificate_chain + ": " + p);
  if (SSL_CTX_use_certificate_chain_file(ctx, files.certificate_chain.c_str()) != 1)
    return failed(why, TlsErrc::bad_certificate, "cannot load the certificate " +
                                                     files.certificate_chain + ": " +
                                                     openssl_reason());
  if (auto p = file_problem(files.private_key); !p.empty())
    return failed(why, TlsErrc::bad_private_key,
                  "cannot load the private key " + files.private_key + ": " + p);
  if (SSL_CTX_use_PrivateKey_file(ctx, files.private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    int reason = ERR_GET_REASON(ERR_peek_error());
    if (reason == X509_R_KEY_VALUES_MISMATCH || reason == X509_R_KEY_TYPE_MISMATCH)
      return failed(why, TlsErrc::key_mismatch, "the private key " + files.private_key +
                                                    " does not match the certificate " +
                                                    files.certificate_chain);
    return failed(why, TlsErrc::bad_private_key, "cannot load the private key " +
                                                     files.private_key + ": " + openssl_reason());
  }
  if (SSL_CTX_check_private_key(ctx) != 1)
    return failed(why, TlsErrc::key_mismatch, "the private key " + files.private_key +
                                                  " does not match the certificate " +
                                                  files.certificate_chain);
  return {};
}

// ALPN wire format: each name prefixed by its length.
std::error_code alpn_wire(const std::vector<std::string>& names, std::vector<unsigned char>& out,
                          std::string* why) {
  out.clear();
  for (const auto& n : names) {
    if (n.empty() || n.size() > 255)
      return failed(why, TlsErrc::bad_option, "ALPN name '" + n + "' must be 1 to 255 bytes");
    out.push_back(static_cast<unsigned char>(n.size()));
    out.insert(out.end(), n.begin(), n.end());
  }
  return {};
}

// Server side: the first of our protocols the client offers; none in common, no ALPN.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  auto* impl = static_cast<TlsServerContext::Impl*>(arg);
  if (impl->alpn.empty()) return SSL_TLSEXT_ERR_NOACK;
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, impl->alpn.data(), unsigned(impl->alpn.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// SNI: switch to the first certificate whose names cover the name asked for; the default
// otherwise.
int select_certificate(SSL* ssl, int*, void* arg) {
  auto* set = static_cast<CertificateSet*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  for (size_t i = 1; i < set->contexts.size(); ++i) {
    X509* leaf = SSL_CTX_get0_certificate(set->contexts[i]);
    if (leaf && X509_check_host(leaf, name, 0, 0, nullptr) == 1) {
      SSL_set_SSL_CTX(ssl, set->contexts[i]);
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

// A client's new session: kept under the key its layer was made with (the SSL's app data).
int remember_session(SSL* ssl, SSL_SESSION* session) {
  auto* key = static_cast<const std::string*>(SSL_get_app_data(ssl));
  auto* impl = static_cast<TlsClientContext::Impl*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (!key || key->empty() || !impl) return 0;
  impl->remember(*key, session);
  return 1;  // the reference is ours now
}

bool kernel_has_ktls() {
#ifdef __linux__
  std::ifstream ulp("/proc/sys/net/ipv4/tcp_available_ulp");
  std::string word;
  while (ulp >> word)
    if (word == "tls") return true;
#endif
  return false;
}

}  // namespace

CertificateSet::~CertificateSet() {
  for (SSL_CTX* c : contexts) SSL_CTX_free(c);
}

bool tls_available() noexcept { return true; }
std::string_view tls_library_version() noexcept { return OpenSSL_version(OPENSSL_VERSION); }

TlsStats TlsCounters::snapshot() const noexcept {
  return {handshakes.load(std::memory_order_relaxed), resumed.load(std::memory_order_relaxed),
          handshake_failures.load(std::memory_order_relaxed),
          handshake_timeouts.load(std::memory_order_relaxed),
          close_notify_unsent.load(std::memory_order_relaxed)};
}

// --- Server ------------------------------------------------------------------------------

std::shared_ptr<CertificateSet> TlsServerContext::Impl::current() const {
  std::lock_guard lock(mutex);
  return certificates;
}

std::error_code TlsServerContext::Impl::load(std::shared_ptr<CertificateSet>& out,
                                             std::string* why) {
  auto set = std::make_shared<CertificateSet>();
  for (const auto& files : options.certificates) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return failed(why, TlsErrc::bad_option, "SSL_CTX_new: " + openssl_reason());
    set->contexts.push_back(ctx);
    if (auto ec = common_settings(ctx, options.ktls, why)) return ec;
    if (auto ec = load_pair(ctx, files, why)) return ec;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, long(options.session_cache_size));
    SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
    // Every context and every reload encrypts tickets with this process's keys.
    if (!tickets->install(ctx))
      return failed(why, TlsErrc::bad_option, "ticket keys refused: " + openssl_reason());
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, this);
    if (!options.client_ca_file.empty()) {
      const std::string& ca = options.client_ca_file;
      if (auto p = file_problem(ca); !p.empty())
        return failed(why, TlsErrc::bad_ca_file, "cannot load the client CA file " + ca + ": " + p);
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca.c_str());
      if (!names || SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1) {
        if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
        return failed(why, TlsErrc::bad_ca_file,
                      "cannot load the client CA file " + ca + ": " + openssl_reason());
      }
      SSL_CTX_set_client_CA_list(ctx, names);  // takes them
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
  }
  if (set->contexts.size() > 1) {
    SSL_CTX_set_tlsext_servername_callback(set->contexts[0], select_certificate);
    SSL_CTX_set_tlsext_servername_arg(set->contexts[0], set.get());
  }
  out = std::move(set);
  return {};
}

Result<std::shared_ptr<TlsServerContext>> TlsServerContext::create(const TlsServerOptions& options,
                                                                   std::string* why) {
  if (options.certificates.empty()) {
    if (why) *why = "a TLS listener needs a certificate and its key";
    return make_error(TlsErrc::bad_certificate);
  }
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  if (auto ec = alpn_wire(options.alpn, impl->alpn, why)) return ec;
  if (options.ticket_key_rotation <= Duration::zero()) {
    if (why) *why = "the ticket key rotation period must be positive";
    return make_error(TlsErrc::bad_option);
  }
  impl->tickets = std::make_unique<TicketKeys>(options.ticket_key_rotation);
  if (!impl->tickets->init())
    return failed(why, TlsErrc::bad_option, "no randomness for ticket keys: " + openssl_reason());
  if (auto ec = impl->load(impl->certificates, why)) return ec;
  impl->ktls_possible = options.ktls && kernel_has_ktls();
  static std::once_flag said;
  std::call_once(said, [&] {
    log_info("TLS: {}; kTLS {}", tls_library_version(),
             impl->ktls_possible ? "possible (the kernel offers the tls ULP)"
                                 : "off (the kernel offers no tls ULP, or it was not asked for)");
  });
  return std::shared_ptr<TlsServerContext>(new TlsServerContext(std::move(impl)));
}

TlsServerContext::TlsServerContext(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsServerContext::~TlsServerContext() = default;

Result<void> TlsServerContext::reload(std::string* why) {
  std::shared_ptr<CertificateSet> fresh;
  if (auto ec = impl_->load(fresh, why)) return ec;
  // Mutual TLS: the trusted roots may have changed, and a ticket carries the verdict on
  // the client's certificate made under the old ones. Those clients verify again.
  if (!impl_->options.client_ca_file.empty() && !impl_->tickets->forget_all())
    return failed(why, TlsErrc::bad_option, "no randomness for ticket keys: " + openssl_reason());
  std::lock_guard lock(impl_->mutex);
  impl_->certificates = std::move(fresh);
  return {};
}

const TlsServerOptions& TlsServerContext::options() const noexcept { return impl_->options; }
TlsStats TlsServerContext::stats() const noexcept { return impl_->counters.snapshot(); }
bool TlsServerContext::ktls_possible() const noexcept { return impl_->ktls_possible; }

// --- Client ------------------------------------------------------------------------------

TlsClientContext::Impl::~Impl() {
  for (auto& [key, s] : sessions) SSL_SESSION_free(s);
  if (ctx) SSL_CTX_free(ctx);
}

void TlsClientContext::Impl::remember(const std::string& key, SSL_SESSION* session) {
  std::lock_guard lock(mutex);
  auto [it, fresh] = sessions.try_emplace(key, session);
  if (!fresh) {
    SSL_SESSION_free(it->second);
    it->second = session;
    return;
  }
  session_order.push_back(key);
  if (session_order.size() > kMaxSessions) {
    auto old = sessions.find(session_order.front());
    if (old != sessions.end()) {
      SSL_SESSION_free(old->second);
      sessions.erase(old);
    }
    session_order.erase(session_order.begin());
  }
}

SSL_SESSION* TlsClientContext::Impl::recall(const std::string& key) {
  std::lock_guard lock(mutex);
  auto it = sessions.find(key);
  if (it == sessions.end()) return nullptr;
  if (!SSL_SESSION_is_resumable(it->second)) return nullptr;
  SSL_SESSION_up_ref(it->second);
  return it->second;
}

Result<std::shared_ptr<TlsClientContext>> TlsClientContext::create(const TlsClientOptions& options,
                                                                   std::string* why) {
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->ctx = SSL_CTX_new(TLS_client_method());
  if (!impl->ctx) return failed(why, TlsErrc::bad_option, "SSL_CTX_new: " + openssl_reason());
  SSL_CTX* ctx = impl->ctx;
  SSL_CTX_set_app_data(ctx, impl.get());
  if (auto ec = common_settings(ctx, options.ktls, why)) return ec;
  if (!options.ca_file.empty()) {
    if (auto p = file_problem(options.ca_file); !p.empty())
      return failed(why, TlsErrc::bad_ca_file, "cannot load the CA file " + options.ca_file + ": " + p);
    if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1)
      return failed(why, TlsErrc::bad_ca_file,
                    "cannot load the CA file " + options.ca_file + ": " + openssl_reason());
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return failed(why, TlsErrc::bad_ca_file,
                  "cannot load the system trust store: " + openssl_reason());
  }
  SSL_CTX_set_verify(ctx, options.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  // Sessions (and TLS 1.3 tickets) are kept per server by the context, not by OpenSSL's
  // internal cache, which a client never looks up.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, remember_session);
  if (options.client_certificate)
    if (auto ec = load_pair(ctx, *options.client_certificate, why)) return ec;
  std::vector<unsigned char> wire;
  if (auto ec = alpn_wire(options.alpn, wire, why)) return ec;
  if (!wire.empty() && SSL_CTX_set_alpn_protos(ctx, wire.data(), unsigned(wire.size())) != 0)
    return failed(why, TlsErrc::bad_option, "ALPN refused: " + openssl_reason());
  impl->ktls_possible = options.ktls && kernel_has_ktls();
  return std::shared_ptr<TlsClientContext>(new TlsClientContext(std::move(impl)));
}

TlsClientContext::TlsClientContext(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsClientContext::~TlsClientContext() = default;
const TlsClientOptions& TlsClientContext::options() const noexcept { return impl_->options; }
TlsStats TlsClientContext::stats() const noexcept { return impl_->counters.snapshot(); }

}  // namespace netloop
