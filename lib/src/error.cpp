// The netloop error category: messages that name the problem and the fix.
#include "netloop/error.hpp"

#include <sys/select.h>

#include <string>

#include <fmt/format.h>

namespace netloop {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "netloop"; }
  std::string message(int code) const override {
    switch (Errc(code)) {
      case Errc::fd_too_large_for_select:
        return fmt::format("descriptor exceeds FD_SETSIZE ({}) for the select backend; "
                           "use the epoll, io_uring or poll backend", FD_SETSIZE);
    }
    return fmt::format("unknown netloop error {}", code);
  }
};

}  // namespace

const std::error_category& netloop_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace netloop
