// The descriptor limit of a run.
#include "os_support.hpp"

#include <sys/resource.h>

namespace netloop::load {

bool ensure_descriptors(size_t connections, std::string* why, const char* flag) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) < 0) return true;
  rlim_t need = rlim_t(connections) + 32;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    rlimit want = rl;
    want.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) ? need : rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &want);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    *why = std::string(flag) + " " + std::to_string(connections) + " needs about " +
           std::to_string(need) + " file descriptors but the limit is " +
           std::to_string(rl.rlim_cur) + " (raise it with ulimit -n)";
    return false;
  }
  return true;
}

}  // namespace netloop::load
