// netloop's own error codes, for failures that no errno names well.
#pragma once

#include <system_error>

namespace netloop {

enum class Errc {
  fd_too_large_for_select = 1,  // select(): descriptor >= FD_SETSIZE
};

const std::error_category& netloop_category() noexcept;
inline std::error_code make_error(Errc e) noexcept { return {int(e), netloop_category()}; }

}  // namespace netloop
