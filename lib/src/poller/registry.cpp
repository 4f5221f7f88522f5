// The run-time backend selector: what this build and this kernel offer, by name.
#include <algorithm>

#include "netloop/poller.hpp"
#include "poller/backends.hpp"

namespace netloop {
namespace {

// In order of preference: the first available one is the default.
const backends::Backend* const kBackends[] = {
#ifdef NETLOOP_HAVE_EPOLL
    &backends::epoll,
#endif
#ifdef NETLOOP_HAVE_KQUEUE
    &backends::kqueue,
#endif
#ifdef NETLOOP_HAVE_IO_URING
    &backends::io_uring,
#endif
    &backends::poll,
    &backends::select,
};

std::string names_of_available() {
  std::string out;
  for (const auto* b : kBackends) {
    if (!b->probe().empty()) continue;
    if (!out.empty()) out += ", ";
    out += b->name;
  }
  return out;
}

}  // namespace

std::vector<BackendInfo> available_backends() {
  std::vector<BackendInfo> out;
  for (const auto* b : kBackends) {
    std::string why = b->probe();
    out.push_back({b->name, why.empty(), why});
  }
  // Known backends this build left out, so --list-pollers shows the whole picture.
  for (const char* known : {"epoll", "kqueue", "io_uring", "poll", "select"}) {
    bool present = std::any_of(std::begin(kBackends), std::end(kBackends),
                               [&](const auto* b) { return std::string_view(b->name) == known; });
    if (!present) out.push_back({known, false, "not compiled into this build"});
  }
  return out;
}

std::string default_backend() {
  for (const auto* b : kBackends)
    if (b->probe().empty()) return b->name;
  return "poll";
}

Result<std::unique_ptr<Poller>> create_poller(std::string_view name, std::string* why) {
  std::string fallback;
  if (name.empty()) name = fallback = default_backend();
  for (const auto* b : kBackends) {
    if (name != b->name) continue;
    std::string reason = b->probe();
    if (!reason.empty()) {
      if (why) *why = std::string(name) + " backend unavailable: " + reason +
                      "; available: " + names_of_available();
      return make_error(ENOTSUP);
    }
    auto p = b->create();
    if (!p && why) *why = std::string(name) + " backend: " + p.error().message();
    return p;
  }
  if (why) {
    bool known = false;
    for (const auto& info : available_backends()) known |= info.name == name;
    *why = known ? "poller '" + std::string(name) + "' is not compiled into this build; available: " +
                       names_of_available()
                 : "unknown poller '" + std::string(name) + "'; available: " + names_of_available();
  }
  return make_error(ENOENT);
}

}  // namespace netloop
