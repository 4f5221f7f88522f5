// TestPki: EC P-256 keys, X.509 v3 certificates with subjectAltName, all in a temp dir.
#include "test_pki.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cstdio>
#include <stdexcept>

namespace nltest {
namespace {

EVP_PKEY* new_key() {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  if (!k) throw std::runtime_error("EVP_EC_gen failed");
  return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) throw std::runtime_error("bad extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509* make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key,
                long serial, int days, bool ca, const std::vector<std::string>& names) {
  X509* c = X509_new();
  X509_set_version(c, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
  if (days >= 0) {
    X509_gmtime_adj(X509_getm_notBefore(c), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c), long(days) * 86400);
  } else {
    X509_gmtime_adj(X509_getm_notBefore(c), -10L * 86400);
    X509_gmtime_adj(X509_getm_notAfter(c), -86400);
  }
  X509_set_pubkey(c, key);
  X509_NAME* name = X509_get_subject_name(c);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
  X509* iss = issuer ? issuer : c;
  if (ca) {
    add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(c, iss, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(c, iss, NID_ext_key_usage, "serverAuth,clientAuth");
    std::string san;
    for (const auto& n : names) {
      unsigned char buf[16];
      bool ip = ::inet_pton(AF_INET, n.c_str(), buf) == 1 || ::inet_pton(AF_INET6, n.c_str(), buf) == 1;
      if (!san.empty()) san += ',';
      san += ip ? "IP:" : "DNS:";
      san += n;
    }
    if (!san.empty()) add_ext(c, iss, NID_subject_alt_name, san);
  }
  add_ext(c, iss, NID_subject_key_identifier, "hash");
  if (!X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()))
    throw std::runtime_error("X509_sign failed");
  return c;
}

void write_cert(const std::filesystem::path& p, X509* c) {
  FILE* f = std::fopen(p.c_str(), "w");
  if (!f || !PEM_write_X509(f, c)) throw std::runtime_error("cannot write " + p.string());
  std::fclose(f);
}

void write_key(const std::filesystem::path& p, EVP_PKEY* k) {
  FILE* f = std::fopen(p.c_str(), "w");
  if (!f || !PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr))
    throw std::runtime_error("cannot write " + p.string());
  std::fclose(f);
}

}  // namespace

struct TestPki::State {
  EVP_PKEY* ca_key = nullptr;
  X509* ca = nullptr;
  long serial = 2;
};

TestPki::TestPki(const std::filesystem::path& dir) : dir_(dir), state_(new State) {
  state_->ca_key = new_key();
  state_->ca = make_cert(state_->ca_key, "netloop test CA", nullptr, nullptr, 1, 30, true, {});
  ca_file_ = (dir_ / "ca.pem").string();
  write_cert(ca_file_, state_->ca);
  EVP_PKEY* other_key = new_key();
  X509* other = make_cert(other_key, "netloop other CA", nullptr, nullptr, 1, 30, true, {});
  other_ca_file_ = (dir_ / "other-ca.pem").string();
  write_cert(other_ca_file_, other);
  X509_free(other);
  EVP_PKEY_free(other_key);
}

TestPki::~TestPki() {
  X509_free(state_->ca);
  EVP_PKEY_free(state_->ca_key);
  delete state_;
}

TestCertificate TestPki::issue(const std::string& stem, const std::vector<std::string>& names,
                               int days) {
  EVP_PKEY* key = new_key();
  X509* c = make_cert(key, names.empty() ? stem : names[0], state_->ca, state_->ca_key,
                      state_->serial++, days, false, names);
  TestCertificate out{(dir_ / (stem + ".pem")).string(), (dir_ / (stem + ".key")).string()};
  write_cert(out.cert, c);
  write_key(out.key, key);
  X509_free(c);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace nltest
