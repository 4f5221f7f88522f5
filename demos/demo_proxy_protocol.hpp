// netloop-demo's PROXY protocol options (--proxy-protocol, --proxy-trusted): the table, the
// check of them as a whole, and the listeners' setup that expects the headers.
#pragma once

#include <string>

#include "demo_protocol.hpp"
#include "option_table.hpp"

namespace netloop::demo {

// The "PROXY protocol" group of --help.
OptionGroup proxy_protocol_option_group();

// After parsing: what is wrong with the PROXY options as a whole ("" = nothing); makes
// DemoOptions::proxy_protocol when --proxy-protocol was given.
std::string check_proxy_protocol_options(DemoOptions& o);

}  // namespace netloop::demo
