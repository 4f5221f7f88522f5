// A throwaway PKI for the TLS tests, made at run time with OpenSSL's API (no key is ever
// committed): a CA, leaf certificates signed by it for the names asked for, and a second
// CA that signs nothing the servers use (a client trusting only it must refuse them).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace nltest {

struct TestCertificate {
  std::string cert;  // PEM chain file (the leaf)
  std::string key;   // PEM private key file
};

class TestPki {
 public:
  // Writes everything under `dir`.
  explicit TestPki(const std::filesystem::path& dir);
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  const std::string& ca_file() const { return ca_file_; }
  const std::string& other_ca_file() const { return other_ca_file_; }
  // A leaf signed by the CA for `names` (DNS names or IP addresses), written as
  // <stem>.pem and <stem>.key; `days` < 0 makes one that has already expired.
  TestCertificate issue(const std::string& stem, const std::vector<std::string>& names,
                        int days = 30);

 private:
  struct State;
  std::filesystem::path dir_;
  std::string ca_file_, other_ca_file_;
  State* state_;
};

}  // namespace nltest
