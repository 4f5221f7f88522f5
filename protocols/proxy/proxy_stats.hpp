// The TCP proxy's counters: per upstream, per listener and per loop; written by the loop,
// read by anyone (a metrics scrape on another loop).
#pragma once

#include <string>
#include <vector>

#include "netloop/counter.hpp"

namespace netloop::proxy {

struct UpstreamStats {
  Counter connects;   // connections made
  Counter failures;   // connects that failed (refused, unreachable, timed out, no such name)
  Counter bytes_out;  // client to upstream
  Counter bytes_in;   // upstream to client
};

// One listener's counters on one loop. Sized once, before the loop runs: the addresses of
// its counters never change.
struct ProxyStats {
  std::string listener;                // "127.0.0.1:6380"
  std::vector<std::string> upstreams;  // as given, in order
  std::vector<UpstreamStats> per_upstream;
  Counter clients;      // clients accepted
  Counter no_upstream;  // clients closed because no upstream could be reached
  Counter idle_closed;  // pairs closed after the idle timeout
};

}  // namespace netloop::proxy
