// A build without OpenSSL: the TLS contexts cannot be made, and say so.
#include "netloop/tls.hpp"
#include "tls/tls_layer.hpp"

namespace netloop {
namespace {

template <class T>
Result<std::shared_ptr<T>> unavailable(std::string* why) {
  if (why) *why = "TLS is not available: netloop was built without OpenSSL (-Dtls)";
  return make_error(TlsErrc::unavailable);
}

}  // namespace

bool tls_available() noexcept { return false; }
std::string_view tls_library_version() noexcept { return "none"; }

struct TlsServerContext::Impl {};
struct TlsClientContext::Impl {};

Result<std::shared_ptr<TlsServerContext>> TlsServerContext::create(const TlsServerOptions&,
                                                                   std::string* why) {
  return unavailable<TlsServerContext>(why);
}
TlsServerContext::TlsServerContext(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsServerContext::~TlsServerContext() = default;
Result<void> TlsServerContext::reload(std::string* why) {
  if (why) *why = "TLS is not available";
  return make_error(TlsErrc::unavailable);
}
const TlsServerOptions& TlsServerContext::options() const noexcept {
  static const TlsServerOptions none;
  return none;
}
TlsStats TlsServerContext::stats() const noexcept { return {}; }
bool TlsServerContext::ktls_possible() const noexcept { return false; }

Result<std::shared_ptr<TlsClientContext>> TlsClientContext::create(const TlsClientOptions&,
                                                                   std::string* why) {
  return unavailable<TlsClientContext>(why);
}
TlsClientContext::TlsClientContext(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsClientContext::~TlsClientContext() = default;
const TlsClientOptions& TlsClientContext::options() const noexcept {
  static const TlsClientOptions none;
  return none;
}
TlsStats TlsClientContext::stats() const noexcept { return {}; }

// No context can exist, so no layer is ever asked for.
std::unique_ptr<TlsLayer> make_server_layer(TlsServerContext&, int) { return nullptr; }
std::unique_ptr<TlsLayer> make_client_layer(TlsClientContext&, int, const std::string&,
                                            const std::string&) {
  return nullptr;
}

}  // namespace netloop
