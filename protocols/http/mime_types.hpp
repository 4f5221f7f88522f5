// Content types by file-name extension.
#pragma once

#include <string_view>

namespace netloop::http {

// The Content-Type for a file name (by its extension, case-insensitively);
// application/octet-stream when unknown.
std::string_view content_type_for(std::string_view file_name) noexcept;

}  // namespace netloop::http
