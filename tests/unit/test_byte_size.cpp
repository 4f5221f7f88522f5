// parse_byte_size: the size syntax every command-line limit uses.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "netloop/byte_size.hpp"

using netloop::parse_byte_size;

TEST_CASE("byte sizes: plain numbers and k/m suffixes") {
  CHECK(parse_byte_size("0") == size_t(0));
  CHECK(parse_byte_size("65536") == size_t(65536));
  CHECK(parse_byte_size("64k") == size_t(64 * 1024));
  CHECK(parse_byte_size("64K") == size_t(64 * 1024));
  CHECK(parse_byte_size("1m") == size_t(1024 * 1024));
  CHECK(parse_byte_size("3M") == size_t(3 * 1024 * 1024));
  CHECK(parse_byte_size(std::to_string(SIZE_MAX)) == SIZE_MAX);
}

TEST_CASE("byte sizes: anything else is refused") {
  for (const char* bad : {"", "k", "m", "-1", "+1", " 1", "1 ", "1.5k", "64kb", "1g", "0x10",
                          "99999999999999999999", "18014398509481984m"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_byte_size(bad).has_value());
  }
}
