// Result: the one convention for calls that can fail (truthy on success, error() says why).
#include <doctest/doctest.h>

#include <cerrno>
#include <ostream>
#include <string>

#include "netloop/result.hpp"

using netloop::make_error;
using netloop::Result;

namespace {

Result<int> half(int n) {
  if (n % 2) return make_error(EINVAL);
  return n / 2;
}

Result<void> even(int n) {
  if (n % 2) return make_error(EINVAL);
  return {};
}

}  // namespace

TEST_CASE("Result<T> and Result<void> are truthy on success, and say why they failed") {
  auto a = half(4);
  REQUIRE(a);
  CHECK(*a == 2);
  CHECK_FALSE(a.error());
  auto b = half(3);
  CHECK_FALSE(b);
  CHECK(b.error() == std::errc::invalid_argument);

  Result<void> ok = even(4);
  CHECK(ok);
  CHECK(ok.ok());
  CHECK_FALSE(ok.error());
  Result<void> bad = even(3);
  CHECK_FALSE(bad);
  CHECK_FALSE(bad.ok());
  CHECK(bad.error() == std::errc::invalid_argument);
  if (auto r = even(5); !r) CHECK(r.error().value() == EINVAL);
}

TEST_CASE("Result<void> from a zero error_code is success (a wrapper may pass on what it has)") {
  Result<void> r = std::error_code{};
  CHECK(r);
  Result<void> f = make_error(EBADF);
  CHECK_FALSE(f);
  CHECK(f.error().value() == EBADF);
}
