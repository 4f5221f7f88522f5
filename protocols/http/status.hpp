// Status lines: the reason phrase for each status code the responder sends.
#pragma once

#include <cstdint>
#include <string_view>

namespace netloop::http {

// "HTTP/1.1 404 Not Found\r\n" for a code we send; a generic line otherwise.
std::string_view status_line(uint16_t status) noexcept;

}  // namespace netloop::http
