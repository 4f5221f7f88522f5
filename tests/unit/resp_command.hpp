// A RESP2 command as a client sends it: an array of bulk strings. Test input for the kv
// example's parser and handler, written independently of demos/kv/resp_writer.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace kv_test {

// (Built with += only: GCC 12 warns falsely (-Wrestrict) about "literal" + std::string.)
inline std::string resp_command(std::initializer_list<std::string_view> args) {
  std::string s = "*";
  s += std::to_string(args.size());
  s += "\r\n";
  for (std::string_view a : args) {
    s += '$';
    s += std::to_string(a.size());
    s += "\r\n";
    s += a;
    s += "\r\n";
  }
  return s;
}

}  // namespace kv_test
