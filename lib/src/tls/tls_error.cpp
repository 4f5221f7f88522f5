// The TLS error category: what each TlsErrc means, in words for logs and close reasons.
#include <string>

#include "netloop/tls.hpp"

namespace netloop {
namespace {

class TlsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "tls"; }
  std::string message(int code) const override {
    switch (TlsErrc(code)) {
      case TlsErrc::unavailable: return "TLS is not available in this build";
      case TlsErrc::bad_certificate: return "cannot load the certificate";
      case TlsErrc::bad_private_key: return "cannot load the private key";
      case TlsErrc::key_mismatch: return "the private key does not match the certificate";
      case TlsErrc::bad_ca_file: return "cannot load the CA file";
      case TlsErrc::bad_option: return "TLS option refused";
      case TlsErrc::handshake_failed: return "TLS handshake failed";
      case TlsErrc::handshake_timeout: return "TLS handshake timed out";
      case TlsErrc::certificate_invalid: return "the peer's certificate did not verify";
      case TlsErrc::host_mismatch: return "the peer's certificate is not for the name asked for";
      case TlsErrc::truncated: return "TLS stream truncated (ended without close_notify)";
      case TlsErrc::protocol_error: return "TLS protocol error";
    }
    return "unknown TLS error " + std::to_string(code);
  }
  std::error_condition default_error_condition(int code) const noexcept override {
    if (TlsErrc(code) == TlsErrc::handshake_timeout) return std::errc::timed_out;
    return {code, *this};
  }
};

}  // namespace

const std::error_category& tls_category() noexcept {
  static const TlsCategory category;
  return category;
}

}  // namespace netloop
