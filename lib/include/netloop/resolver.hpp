// Resolver: host names to addresses without ever blocking a loop.
//
// getaddrinfo(3) runs on a few resolver threads and the answer is posted back to the
// loop. It is the system's own lookup: /etc/hosts, nsswitch, the search domains and
// whatever the host's DNS set-up is, exactly as every other program on the machine sees
// them. A numeric host ("127.0.0.1", "::1") is answered without a thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/clock.hpp"
#include "netloop/result.hpp"
#include "netloop/timer_queue.hpp"

namespace netloop {

class EventLoop;

// Why a name did not resolve (the error_code's category is resolve_category()).
enum class ResolveErrc {
  name_not_found = 1,  // no such name (EAI_NONAME)
  no_address,          // the name exists but has no address of a usable family (EAI_NODATA...)
  temporary_failure,   // the name server did not answer in time or failed (EAI_AGAIN)
  timed_out,           // ResolverOptions::timeout passed first
  bad_name,            // not a host name at all (empty, too long, a NUL inside)
  failed,              // anything else getaddrinfo reports (EAI_FAIL, EAI_MEMORY, EAI_SYSTEM...)
};
const std::error_category& resolve_category() noexcept;
inline std::error_code make_error(ResolveErrc e) noexcept { return {int(e), resolve_category()}; }
inline std::error_code make_error_code(ResolveErrc e) noexcept { return make_error(e); }  // for ==

// What a lookup produces: the addresses in the order getaddrinfo gave them (RFC 6724's
// preference), each with `port` set; never empty on success.
using Addresses = std::vector<Address>;
// The lookup a resolver thread runs; getaddrinfo unless a test substitutes one.
using LookupFunction = std::function<Result<Addresses>(const std::string& host, uint16_t port)>;
// The system's lookup: getaddrinfo(host, AF_UNSPEC, SOCK_STREAM), blocking. (No
// AI_ADDRCONFIG: glibc ignores loopback when applying it, so a loopback-only host would find
// nothing; an address of a family the host cannot reach fails its attempt at once.)
Result<Addresses> system_lookup(const std::string& host, uint16_t port);

struct ResolverOptions {
  Duration timeout = seconds(10);  // a lookup still running past this reports timed_out
  size_t max_threads = 4;          // started when needed, gone after a few idle seconds
  LookupFunction lookup{};         // empty: system_lookup
};

using ResolveId = uint64_t;  // 0 is never an id
using ResolveCallback = std::function<void(Result<Addresses>)>;

class Resolver {
 public:
  explicit Resolver(EventLoop& loop, ResolverOptions options = {});
  ~Resolver();  // cancels what is pending: no callback runs after it
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Loop thread. `done` runs on the loop thread, never inside this call, exactly once
  // unless cancelled first.
  ResolveId resolve(std::string_view host, uint16_t port, ResolveCallback done);
  // Whether it was still pending; its callback will not run. A lookup already running on
  // a resolver thread finishes there and its answer is dropped.
  bool cancel(ResolveId id) noexcept;
  size_t pending() const noexcept;

  EventLoop& loop() const noexcept { return loop_; }

 private:
  struct Shared;  // what the resolver threads hold: the queue, and the way back
  struct Request;
  void answer(ResolveId id, Result<Addresses> result);
  void on_timeout(ResolveId id);

  EventLoop& loop_;
  ResolverOptions options_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Request>> pending_;
  ResolveId next_id_ = 1;
};

}  // namespace netloop

template <>
struct std::is_error_code_enum<netloop::ResolveErrc> : std::true_type {};
