// A tiny HTTP endpoint for Prometheus: GET /metrics answers with whatever `render`
// returns (the text exposition format, version 0.0.4); anything else is a 404 or 405.
// Parsing, keep-alive and limits are the request parser's.
#pragma once

#include <functional>
#include <string>

#include "netloop/protocol.hpp"

namespace netloop::http {

// `render` runs on the endpoint's loop for every scrape.
StreamHandlerFactory metrics_factory(std::function<std::string()> render);

}  // namespace netloop::http
