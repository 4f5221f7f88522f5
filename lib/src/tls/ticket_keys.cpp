// TicketKeys: rotation and the OpenSSL ticket callback (AES-256-CBC + HMAC-SHA256, the
// ticket format OpenSSL uses with its own keys).
#include "tls/ticket_keys.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>

#include "netloop/log.hpp"

namespace netloop {
namespace {

bool set_mac_key(EVP_MAC_CTX* mac, const std::array<unsigned char, 32>& key) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key.data()),
                                        key.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  return EVP_MAC_CTX_set_params(mac, params) == 1;
}

}  // namespace

bool TicketKeys::make_key(Key& k) {
  if (RAND_bytes(k.name.data(), int(k.name.size())) != 1 ||
      RAND_bytes(k.aes.data(), int(k.aes.size())) != 1 ||
      RAND_bytes(k.hmac.data(), int(k.hmac.size())) != 1)
    return false;
  k.made = Clock::now();
  k.valid = true;
  return true;
}

bool TicketKeys::init() {
  std::lock_guard lock(mutex_);
  return make_key(current_);
}

bool TicketKeys::install(SSL_CTX* ctx) {
  SSL_CTX_set_app_data(ctx, this);
  return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &TicketKeys::callback) == 1;
}

bool TicketKeys::forget_all() {
  std::lock_guard lock(mutex_);
  Key fresh;
  if (!make_key(fresh)) return false;
  previous_ = Key{};
  current_ = fresh;
  ++rotations_;
  return true;
}

uint64_t TicketKeys::rotations() const {
  std::lock_guard lock(mutex_);
  return rotations_;
}

int TicketKeys::callback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int encrypt) {
  auto* self = static_cast<TicketKeys*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (!self) return encrypt ? -1 : 0;
  if (encrypt) return self->encrypt(name, iv, cipher, mac);
  int r = self->decrypt(name, iv, cipher, mac);
  // TLS 1.3 must be told to renew: the tickets OpenSSL 3.0 sends after a resumption that
  // was not (found here by running it) do not resume in turn.
  return r == 1 && SSL_version(ssl) >= TLS1_3_VERSION ? 2 : r;
}

// A new ticket: under the current key, which is replaced first if its time is up.
int TicketKeys::encrypt(unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                        EVP_MAC_CTX* mac) {
  Key k;
  {
    std::lock_guard lock(mutex_);
    if (Clock::now() - current_.made >= lifetime_) {
      Key fresh;
      if (make_key(fresh)) {
        previous_ = current_;
        current_ = fresh;
        ++rotations_;
      }
    }
    k = current_;
  }
  const EVP_CIPHER* aes = EVP_aes_256_cbc();
  if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes)) != 1) return -1;
  std::memcpy(name, k.name.data(), k.name.size());
  if (EVP_EncryptInit_ex(cipher, aes, nullptr, k.aes.data(), iv) != 1) return -1;
  return set_mac_key(mac, k.hmac) ? 1 : -1;
}

// A ticket offered back: 0 (a full handshake) when its key is unknown or too old; 2 for
// the previous key, so OpenSSL issues a fresh ticket under the current one.
int TicketKeys::decrypt(const unsigned char* name, const unsigned char* iv,
                        EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac) {
  Key k;
  int found = 0;
  {
    std::lock_guard lock(mutex_);
    auto now = Clock::now();
    if (current_.valid && std::memcmp(name, current_.name.data(), current_.name.size()) == 0 &&
        now - current_.made < 2 * lifetime_) {
      k = current_;
      found = 1;
    } else if (previous_.valid &&
               std::memcmp(name, previous_.name.data(), previous_.name.size()) == 0 &&
               now - previous_.made < 2 * lifetime_) {
      k = previous_;
      found = 2;
    }
  }
  if (!found) return 0;
  if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes.data(), iv) != 1) return -1;
  return set_mac_key(mac, k.hmac) ? found : -1;
}

}  // namespace netloop
