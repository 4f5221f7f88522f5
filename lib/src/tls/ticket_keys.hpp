// TicketKeys: the keys a server encrypts its session tickets with (TLS 1.3 tickets, TLS 1.2
// tickets). Random per process, never written anywhere, and rotated: a key encrypts
// tickets for one `lifetime` and decrypts them for one more, so a ticket is good for at
// most twice the lifetime, and a stolen key opens only that window's sessions. A ticket
// under the previous key resumes and is replaced by one under the current key.
//
// Shared by every SSL_CTX of a TlsServerContext (its SNI contexts and the ones a reload
// makes), and by every loop: the callback takes a lock, once per ticket issued or read.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <mutex>

#include "netloop/clock.hpp"

namespace netloop {

class TicketKeys {
 public:
  explicit TicketKeys(Duration lifetime) : lifetime_(lifetime) {}

  // Makes the first key; false when there is no randomness.
  bool init();
  // Every ticket issued or read by `ctx` goes through these keys (SSL_CTX app data).
  bool install(SSL_CTX* ctx);
  // Forgets every key: tickets issued so far no longer resume (a reload that changed
  // who may connect: mutual TLS's trusted roots).
  bool forget_all();
  uint64_t rotations() const;

 private:
  struct Key {
    std::array<unsigned char, 16> name{};
    std::array<unsigned char, 32> aes{};
    std::array<unsigned char, 32> hmac{};
    TimePoint made{};
    bool valid = false;
  };
  static int callback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* mac, int encrypt);
  int encrypt(unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac);
  int decrypt(const unsigned char* name, const unsigned char* iv, EVP_CIPHER_CTX* cipher,
              EVP_MAC_CTX* mac);
  bool make_key(Key& k);  // under mutex_

  Duration lifetime_;
  mutable std::mutex mutex_;
  Key current_, previous_;
  uint64_t rotations_ = 0;
};

}  // namespace netloop
