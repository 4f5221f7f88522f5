// A tiny HTTP endpoint for Prometheus: GET /metrics answers with whatever `render`
// returns (the text exposition format, version 0.0.4); anything else is a 404 or 405.
// Framing, keep-alive, timeouts and backpressure are HttpHandler's, as for the file
// server; the endpoint has its own small connection cap, since it sits outside the
// server's (a scrape must get through when the server is full).
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "http/http_options.hpp"
#include "netloop/protocol.hpp"

namespace netloop::http {

struct MetricsOptions {
  HttpOptions http;  // limits and timeouts (root and the file options are not used)
  // Connections open at once; past it a 503 and close.
  size_t max_connections = 8;
};

// `render` runs on the endpoint's loop for every scrape. The factory, and the handlers it
// makes, belong to one loop.
StreamHandlerFactory metrics_factory(std::function<std::string()> render,
                                     const MetricsOptions& options = {});

}  // namespace netloop::http
