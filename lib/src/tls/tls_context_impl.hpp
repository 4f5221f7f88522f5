// What the TLS contexts hold (OpenSSL builds only): shared by the contexts and by every
// connection's layer, which keeps them alive while it lives.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "netloop/tls.hpp"
#include "tls/ticket_keys.hpp"

namespace netloop {

struct TlsCounters {
  std::atomic<uint64_t> handshakes{0};
  std::atomic<uint64_t> resumed{0};
  std::atomic<uint64_t> handshake_failures{0};
  std::atomic<uint64_t> handshake_timeouts{0};
  std::atomic<uint64_t> close_notify_unsent{0};
  TlsStats snapshot() const noexcept;
};

// One load of the server's certificates: a context per certificate, the first the
// default (its SNI callback switches to the others).
struct CertificateSet {
  std::vector<SSL_CTX*> contexts;
  CertificateSet() = default;
  CertificateSet(const CertificateSet&) = delete;
  CertificateSet& operator=(const CertificateSet&) = delete;
  ~CertificateSet();
};

struct TlsServerContext::Impl {
  TlsServerOptions options;
  std::vector<unsigned char> alpn;  // wire format
  std::unique_ptr<TicketKeys> tickets;  // this process's own, rotated
  bool ktls_possible = false;
  TlsCounters counters;
  mutable std::mutex mutex;  // guards `certificates` (reload() from any thread)
  std::shared_ptr<CertificateSet> certificates;

  std::shared_ptr<CertificateSet> current() const;
  std::error_code load(std::shared_ptr<CertificateSet>& out, std::string* why);
};

struct TlsClientContext::Impl {
  TlsClientOptions options;
  SSL_CTX* ctx = nullptr;
  bool ktls_possible = false;
  TlsCounters counters;
  // The last session each server (name and address) gave, for resuming the next
  // connection to it; bounded (the oldest entries go first). Any thread.
  static constexpr size_t kMaxSessions = 1024;
  std::mutex mutex;
  std::map<std::string, SSL_SESSION*> sessions;
  std::vector<std::string> session_order;  // insertion order, for eviction

  void remember(const std::string& key, SSL_SESSION* session);  // takes the reference
  SSL_SESSION* recall(const std::string& key);                   // a new reference, or null
  ~Impl();
};

}  // namespace netloop
