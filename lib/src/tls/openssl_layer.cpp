// The OpenSSL session of one connection: nonblocking handshake, reads, writes and files,
// each call saying what it waits for, and every failure named (TlsErrc).
//
// OpenSSL's per-thread error queue is emptied before every call: a loop thread serves
// many connections, and an error left by one must not be read as another's.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <mutex>
#include <sys/socket.h>
#include <unistd.h>

#include "netloop/log.hpp"
#include "tls/tls_context_impl.hpp"
#include "tls/tls_layer.hpp"

namespace netloop {
namespace {

constexpr size_t kRecord = 16 * 1024;  // the largest TLS record's plaintext

bool make_room_for_alert(int fd) noexcept;

bool is_address(const std::string& name) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, name.c_str(), buf) == 1 || ::inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

class OpenSslLayer final : public TlsLayer {
 public:
  OpenSslLayer(SSL* ssl, int fd, bool client, TlsCounters& counters, Duration timeout,
               std::shared_ptr<const void> keep)
      : ssl_(ssl),
        counters_(counters),
        timeout_(timeout),
        keep_(std::move(keep)),
        fd_(fd),
        client_(client) {}
  ~OpenSslLayer() override { SSL_free(ssl_); }

  Step handshake() override {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      settle();
      return Step::done;
    }
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) return Step::want_read;
    if (e == SSL_ERROR_WANT_WRITE) return Step::want_write;
    note_failure(e, true);
    counters_.handshake_failures.fetch_add(1, std::memory_order_relaxed);
    return Step::failed;
  }

  void handshake_timed_out() noexcept override {
    failed_ = true;
    failure_ = make_error(TlsErrc::handshake_timeout);
    failure_text_ = "no finished TLS handshake within the timeout";
    counters_.handshake_timeouts.fetch_add(1, std::memory_order_relaxed);
  }

  std::error_code failure() const noexcept override { return failure_; }
  const std::string& failure_text() const noexcept override { return failure_text_; }
  const TlsInfo& info() const noexcept override { return info_; }
  bool is_client() const noexcept override { return client_; }
  Duration handshake_timeout() const noexcept override { return timeout_; }

  // Reads whole records until the socket has nothing more (WANT_READ) or `into` is full.
  // An end or a failure found after some bytes is kept and reported by the next call:
  // has_buffered_input() says so, since no poller event may ever come for it (a
  // close_notify that came in the same segment as the last data, with no FIN after it).
  IoResult read(void* into, size_t n) override {
    read_needs_write_ = false;
    more_ = false;
    if (held_end_) {
      held_end_ = false;
      return held_;
    }
    if (failed_) return {0, EPROTO};
    size_t total = 0;
    auto* out = static_cast<char*>(into);
    while (total < n) {
      ERR_clear_error();
      size_t got = 0;
      int r = SSL_read_ex(ssl_, out + total, n - total, &got);
      if (r == 1) {
        total += got;
        // Stop before a read that would only find the socket empty. Records (or part of
        // one) already taken from the socket are read on: the poller cannot see them.
        if (!SSL_has_pending(ssl_)) break;
        if (total == n) more_ = true;  // `into` is full: the caller reads again soon
        continue;
      }
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ) break;
      if (e == SSL_ERROR_WANT_WRITE) {
        read_needs_write_ = true;
        break;
      }
      IoResult end = end_or_error(e);
      if (total == 0) return end;
      held_ = end;  // the bytes before it go first
      held_end_ = true;
      break;
    }
    if (total > 0) return {total, 0};
    return {0, EAGAIN};
  }

  IoResult write(const void* data, size_t n) override {
    write_needs_read_ = false;
    if (failed_) return {0, EPROTO};
    ERR_clear_error();
    size_t done = 0;
    int r = SSL_write_ex(ssl_, data, n, &done);
    if (r == 1) return {done, 0};
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_WRITE) return {0, EAGAIN};
    if (e == SSL_ERROR_WANT_READ) {
      write_needs_read_ = true;
      return {0, EAGAIN};
    }
    return io_error(e);
  }

  // Small pieces (a response head and a short body) go out as one record.
  IoResult write_gather(std::span<const std::string_view> pieces) override {
    if (pieces.empty()) return {0, 0};
    if (pieces.size() == 1 || pieces[0].size() >= kRecord)
      return write(pieces[0].data(), pieces[0].size());
    char record[kRecord];
    size_t used = 0;
    for (auto p : pieces) {
      size_t take = std::min(p.size(), sizeof record - used);
      std::copy_n(p.data(), take, record + used);
      used += take;
      if (used == sizeof record) break;
    }
    return write(record, used);
  }

  IoResult write_file(int fd, uint64_t offset, size_t n) override {
#ifdef SSL_OP_ENABLE_KTLS
    if (info_.ktls_send) {
      write_needs_read_ = false;
      ERR_clear_error();
      ossl_ssize_t r = SSL_sendfile(ssl_, fd, off_t(offset), n, 0);
      if (r > 0) return {size_t(r), 0};
      if (r == 0) return {0, 0};
      int e = SSL_get_error(ssl_, int(r));
      if (e == SSL_ERROR_WANT_WRITE) return {0, EAGAIN};
      return io_error(e);
    }
#endif
    // Through one record's worth of stack: the loop's shared area may hold the input a
    // handler is parsing while it calls send_file.
    char record[kRecord];
    ssize_t got;
    do {
      got = ::pread(fd, record, std::min(n, sizeof record), off_t(offset));
    } while (got < 0 && errno == EINTR);
    if (got < 0) return {0, errno};
    if (got == 0) return {0, 0};  // the file ended early
    return write(record, size_t(got));
  }

  void send_close_notify() noexcept override {
    if (failed_ || close_notify_tried_ || !SSL_is_init_finished(ssl_)) return;
    close_notify_tried_ = true;  // once: a second SSL_shutdown would wait for the peer's
    ERR_clear_error();
    int r = SSL_shutdown(ssl_);  // sends ours; the peer's is not waited for
    if (r < 0 && SSL_get_error(ssl_, r) == SSL_ERROR_WANT_WRITE && make_room_for_alert(fd_)) {
      ERR_clear_error();
      r = SSL_shutdown(ssl_);  // writes the alert OpenSSL kept
    }
    if (r < 0) {
      counters_.close_notify_unsent.fetch_add(1, std::memory_order_relaxed);
      log_debug("TLS: close_notify not sent: the socket's send buffer stayed full");
    }
    ERR_clear_error();
  }

  bool read_needs_write() const noexcept override { return read_needs_write_; }
  bool write_needs_read() const noexcept override { return write_needs_read_; }
  bool has_buffered_input() const noexcept override { return more_ || held_end_; }

  // The key a client's new sessions are kept under (remember_session reads it).
  void set_session_key(std::string key) {
    session_key_ = std::move(key);
    SSL_set_app_data(ssl_, &session_key_);
  }

  // A client's target name: what TlsInfo::server_name shows.
  void set_server_name(std::string name) {
    server_name_ = std::move(name);
    info_.server_name = server_name_;
  }

 private:
  void settle() {
    info_.version = SSL_get_version(ssl_);
    info_.cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_));
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
    if (alpn) info_.alpn = {reinterpret_cast<const char*>(alpn), alpn_len};
    if (const char* sni = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) info_.server_name = sni;
    info_.resumed = SSL_session_reused(ssl_) == 1;
#ifdef SSL_OP_ENABLE_KTLS
    info_.ktls_send = BIO_get_ktls_send(SSL_get_wbio(ssl_)) == 1;
#endif
    // Application data that came with the handshake's last flight: read once.
    more_ = SSL_has_pending(ssl_) == 1;
    counters_.handshakes.fetch_add(1, std::memory_order_relaxed);
    if (info_.resumed) counters_.resumed.fetch_add(1, std::memory_order_relaxed);
  }

  // A read that ended: close_notify is the peer's orderly end; anything else is an error.
  IoResult end_or_error(int e) {
    if (e == SSL_ERROR_ZERO_RETURN) return {0, 0};
    return io_error(e);
  }

  // A socket error travels as its errno (ECONNRESET reads as a reset); a TLS failure as
  // EPROTO, with failure() naming it.
  IoResult io_error(int e) {
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno != 0) {
      int err = errno;
      failed_ = true;
      ERR_clear_error();
      return {0, err};
    }
    note_failure(e, false);
    return {0, EPROTO};
  }

  void note_failure(int e, bool handshaking) {
    failed_ = true;
    unsigned long err = ERR_peek_error();
    int reason = ERR_GET_REASON(err);
    long verify = SSL_get_verify_result(ssl_);
    const char* words = err ? ERR_reason_error_string(err) : nullptr;
    failure_text_ = words ? words : (e == SSL_ERROR_SYSCALL ? "the peer closed the connection"
                                                             : "unknown reason");
    bool verifying = SSL_get_verify_mode(ssl_) != SSL_VERIFY_NONE;
    if (client_ && handshaking && verifying && verify != X509_V_OK) {
      bool name = verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH;
      failure_ = make_error(name ? TlsErrc::host_mismatch : TlsErrc::certificate_invalid);
      failure_text_ = std::string("certificate verify failed: ") +
                      X509_verify_cert_error_string(verify);
    } else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING ||
               (e == SSL_ERROR_SYSCALL && err == 0)) {
      failure_ = make_error(handshaking ? TlsErrc::handshake_failed : TlsErrc::truncated);
      failure_text_ = handshaking ? "the peer closed the connection during the handshake"
                                  : "the stream ended without close_notify";
    } else {
      failure_ = make_error(handshaking ? TlsErrc::handshake_failed : TlsErrc::protocol_error);
    }
    ERR_clear_error();
  }

  SSL* ssl_;
  TlsCounters& counters_;
  Duration timeout_;
  std::shared_ptr<const void> keep_;  // the context's state, alive while this session is
  int fd_;                            // the socket (the connection's: never closed here)
  TlsInfo info_{};
  std::error_code failure_{};
  std::string failure_text_{};
  std::string server_name_{};
  std::string session_key_{};
  bool client_;
  bool failed_ = false;
  bool close_notify_tried_ = false;
  bool read_needs_write_ = false;
  bool write_needs_read_ = false;
  bool more_ = false;      // the last read stopped with bytes still inside OpenSSL
  bool held_end_ = false;  // `held_` is what the next read returns
  IoResult held_{};
};

// The session's socket I/O. OpenSSL's own socket BIO writes with write(2), which raises
// SIGPIPE when the peer has gone: a process that does not ignore it dies. This one sends
// with MSG_NOSIGNAL, as TcpConnection does. kTLS needs OpenSSL's socket BIO (it installs
// the kernel's keys through it), so where kTLS is possible that one is used, and SIGPIPE
// is ignored process-wide instead (said once in the log).
int socket_write(BIO* b, const char* data, size_t n, size_t* written) {
  int fd = int(reinterpret_cast<intptr_t>(BIO_get_data(b)));
  BIO_clear_retry_flags(b);
  ssize_t r;
  do {
#ifdef MSG_NOSIGNAL
    r = ::send(fd, data, n, MSG_NOSIGNAL);
#else
    r = ::send(fd, data, n, 0);  // SO_NOSIGPIPE is set on the socket (TcpConnection::start)
#endif
  } while (r < 0 && errno == EINTR);
  if (r >= 0) {
    *written = size_t(r);
    return 1;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
  return 0;
}

int socket_read(BIO* b, char* into, size_t n, size_t* got) {
  int fd = int(reinterpret_cast<intptr_t>(BIO_get_data(b)));
  BIO_clear_retry_flags(b);
  ssize_t r;
  do {
    r = ::recv(fd, into, n, 0);
  } while (r < 0 && errno == EINTR);
  if (r > 0) {
    *got = size_t(r);
    return 1;
  }
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
  if (r == 0) errno = 0;  // the end of the stream, not an error: OpenSSL names it
  return 0;
}

long socket_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is buffered here
}

int socket_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* socket_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "netloop socket");
    BIO_meth_set_write_ex(m, socket_write);
    BIO_meth_set_read_ex(m, socket_read);
    BIO_meth_set_ctrl(m, socket_ctrl);
    BIO_meth_set_create(m, socket_create);
    return m;
  }();
  return method;
}

// Our end of stream comes when every byte before it is in the kernel, which may leave the
// send buffer full: the close_notify alert (tens of bytes) would then be lost, and the peer
// would see a truncated stream. Nothing is written after it, and the socket closes soon, so
// the buffer is simply made larger by a few records (a buffer the kernel has grown past the
// setsockopt cap is left alone: shrinking it would make no room).
bool make_room_for_alert(int fd) noexcept {
  int size = 0;
  socklen_t len = sizeof size;
  if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &len) < 0) return false;
  int wanted = size / 2 + 8192;  // Linux doubles what it is given (for its bookkeeping)
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &wanted, sizeof wanted) < 0) return false;
  int now = 0;
  len = sizeof now;
  return ::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &now, &len) == 0 && now > size;
}

bool attach_socket(SSL* ssl, int fd, bool ktls) {
  if (ktls) {
    static std::once_flag once;
    std::call_once(once, [] {
      struct sigaction old{};
      if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
        ::signal(SIGPIPE, SIG_IGN);
        log_info("TLS: SIGPIPE ignored (kTLS writes through OpenSSL's socket BIO)");
      }
    });
    return SSL_set_fd(ssl, fd) == 1;
  }
  BIO* bio = BIO_new(socket_method());
  if (!bio) return false;
  BIO_set_data(bio, reinterpret_cast<void*>(intptr_t(fd)));
  SSL_set_bio(ssl, bio, bio);  // one reference, for both directions
  return true;
}

struct ServerKeep {
  std::shared_ptr<TlsServerContext::Impl> impl;
  std::shared_ptr<CertificateSet> certificates;  // the SNI callback's argument
};

}  // namespace

std::unique_ptr<TlsLayer> make_server_layer(TlsServerContext& ctx, int fd) {
  const auto& impl = ctx.impl();
  bool ktls = impl->ktls_possible;
  auto keep = std::make_shared<ServerKeep>(ServerKeep{impl, impl->current()});
  SSL* ssl = SSL_new(keep->certificates->contexts[0]);
  if (!ssl) return nullptr;
  if (!attach_socket(ssl, fd, ktls)) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return std::make_unique<OpenSslLayer>(ssl, fd, false, impl->counters, impl->options.handshake_timeout,
                                        std::move(keep));
}

std::unique_ptr<TlsLayer> make_client_layer(TlsClientContext& ctx, int fd,
                                            const std::string& server_name,
                                            const std::string& session_key) {
  const auto& impl = ctx.impl();
  bool ktls = impl->ktls_possible;
  SSL* ssl = SSL_new(impl->ctx);
  if (!ssl) return nullptr;
  if (!attach_socket(ssl, fd, ktls)) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  auto layer = std::make_unique<OpenSslLayer>(ssl, fd, true, impl->counters,
                                              impl->options.handshake_timeout, impl);
  if (!server_name.empty()) {
    layer->set_server_name(server_name);
    bool address = is_address(server_name);
    // SNI carries host names only (RFC 6066); an address is checked as one.
    if (!address) SSL_set_tlsext_host_name(ssl, server_name.c_str());
    if (impl->options.verify_peer) {
      if (address)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name.c_str());
      else
        SSL_set1_host(ssl, server_name.c_str());
    }
  }
  if (!impl->options.resume_sessions) return layer;
  layer->set_session_key(session_key);
  if (SSL_SESSION* s = impl->recall(session_key)) {
    SSL_set_session(ssl, s);
    SSL_SESSION_free(s);
  }
  return layer;
}

}  // namespace netloop
