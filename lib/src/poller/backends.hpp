// Private: the factory and probe of each backend compiled into this build.
#pragma once

#include <memory>
#include <string>

#include "netloop/poller.hpp"

namespace netloop::backends {

struct Backend {
  const char* name;
  // Returns an empty string when this kernel can run the backend, or why not.
  std::string (*probe)();
  Result<std::unique_ptr<Poller>> (*create)();
};

#ifdef NETLOOP_HAVE_EPOLL
extern const Backend epoll;
#endif
extern const Backend poll;

}  // namespace netloop::backends
