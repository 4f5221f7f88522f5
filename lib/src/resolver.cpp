// Resolver: getaddrinfo on a few worker threads, answers posted back to the loop.
#include "netloop/resolver.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "netloop/event_loop.hpp"
#include "netloop/log.hpp"

namespace netloop {
namespace {

class ResolveCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "resolve"; }
  std::string message(int ev) const override {
    switch (ResolveErrc(ev)) {
      case ResolveErrc::name_not_found: return "name not found";
      case ResolveErrc::no_address: return "the name has no address";
      case ResolveErrc::temporary_failure: return "temporary failure in name resolution";
      case ResolveErrc::timed_out: return "name resolution timed out";
      case ResolveErrc::bad_name: return "not a valid host name";
      case ResolveErrc::failed: return "name resolution failed";
    }
    return "unknown resolve error";
  }
  // So that `error == std::errc::timed_out` holds for a lookup that timed out, as for a
  // connect that did.
  std::error_condition default_error_condition(int ev) const noexcept override {
    if (ResolveErrc(ev) == ResolveErrc::timed_out) return std::errc::timed_out;
    return {ev, *this};
  }
};

// A numeric IPv4 or IPv6 host ("[::1]" too) as an address, without any lookup.
bool numeric_address(std::string_view host, uint16_t port, Address& out) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  char text[INET6_ADDRSTRLEN + 1];
  if (host.empty() || host.size() >= sizeof text) return false;
  std::memcpy(text, host.data(), host.size());
  text[host.size()] = '\0';
  sockaddr_in v4{};
  if (::inet_pton(AF_INET, text, &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    out = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&v4), sizeof v4);
    out.set_port(port);
    return true;
  }
  sockaddr_in6 v6{};
  if (::inet_pton(AF_INET6, text, &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    out = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&v6), sizeof v6);
    out.set_port(port);
    return true;
  }
  return false;
}

bool valid_name(std::string_view host) {
  return !host.empty() && host.size() <= 253 && host.find('\0') == std::string_view::npos;
}

std::error_code gai_error(int rc, int err) {
  switch (rc) {
    case EAI_NONAME: return make_error(ResolveErrc::name_not_found);
#if defined(EAI_NODATA) && EAI_NODATA != EAI_NONAME
    case EAI_NODATA: return make_error(ResolveErrc::no_address);
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: return make_error(ResolveErrc::no_address);
#endif
    case EAI_AGAIN: return make_error(ResolveErrc::temporary_failure);
    case EAI_SYSTEM: return err ? make_error(err) : make_error(ResolveErrc::failed);
    default: return make_error(ResolveErrc::failed);
  }
}

constexpr auto kIdleThreadExit = std::chrono::seconds(5);

}  // namespace

const std::error_category& resolve_category() noexcept {
  static const ResolveCategory category;
  return category;
}

Result<Addresses> system_lookup(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // No AI_ADDRCONFIG: glibc ignores loopback addresses when applying it, so a machine with
  // only loopback would find nothing; an address of a family the host cannot reach fails
  // its attempt at once (ENETUNREACH) and the connector goes on to the next.
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) return gai_error(rc, errno);
  Addresses out;
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    Address a = Address::from_sockaddr(ai->ai_addr, socklen_t(ai->ai_addrlen));
    a.set_port(port);
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  ::freeaddrinfo(list);
  if (out.empty()) return make_error(ResolveErrc::no_address);
  return out;
}

// What the resolver threads share with the loop. The threads outlive a resolver that is
// destroyed while they are inside getaddrinfo: they hold this, find `owner` null, and drop
// their answer.
struct Resolver::Shared {
  struct Job {
    ResolveId id;
    std::string host;
    uint16_t port;
  };
  std::mutex mu;
  std::condition_variable work;
  std::deque<Job> queue;
  size_t threads = 0;
  size_t idle = 0;
  size_t max_threads = 1;
  LookupFunction lookup;
  EventLoop* loop = nullptr;
  Resolver* owner = nullptr;  // null once the resolver is gone (loop thread writes, under mu)

  static void work_loop(std::shared_ptr<Shared> self) {
    std::unique_lock lock(self->mu);
    for (;;) {
      ++self->idle;
      bool got = self->work.wait_for(lock, kIdleThreadExit, [&] {
        return !self->queue.empty() || !self->owner;
      });
      --self->idle;
      if (!got || self->queue.empty()) break;  // idle long enough, or the resolver is gone
      Job job = std::move(self->queue.front());
      self->queue.pop_front();
      lock.unlock();
      Result<Addresses> result = self->lookup(job.host, job.port);
      lock.lock();
      if (!self->owner) continue;  // drops the answer; the queue is empty by now
      self->loop->post([self, id = job.id, r = std::move(result)]() mutable {
        // The loop thread: the only writer of owner, so no lock is needed to read it.
        if (Resolver* owner = self->owner) owner->answer(id, std::move(r));
      });
    }
    --self->threads;
  }
};

struct Resolver::Request {
  ResolveId id;
  ResolveCallback done;
  TimerId timer;
};

Resolver::Resolver(EventLoop& loop, ResolverOptions options)
    : loop_(loop), options_(std::move(options)), shared_(std::make_shared<Shared>()) {
  shared_->max_threads = std::max<size_t>(1, options_.max_threads);
  shared_->lookup = options_.lookup ? options_.lookup : LookupFunction(system_lookup);
  shared_->loop = &loop_;
  shared_->owner = this;
}

Resolver::~Resolver() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->owner = nullptr;
    shared_->queue.clear();
  }
  shared_->work.notify_all();
  for (auto& r : pending_)
    if (r->timer) loop_.cancel_timer(r->timer);
}

ResolveId Resolver::resolve(std::string_view host, uint16_t port, ResolveCallback done) {
  loop_.assert_in_loop_thread();
  ResolveId id = next_id_++;
  auto req = std::make_unique<Request>();
  req->id = id;
  req->done = std::move(done);
  pending_.push_back(std::move(req));

  // Answers known now still come later, never inside this call.
  auto answer_later = [this](ResolveId which, Result<Addresses> r) {
    loop_.defer([shared = shared_, which, r = std::move(r)]() mutable {
      if (Resolver* owner = shared->owner) owner->answer(which, std::move(r));
    });
  };
  auto answer_soon = [&](Result<Addresses> r) { answer_later(id, std::move(r)); };
  Address numeric;
  if (numeric_address(host, port, numeric)) {
    answer_soon(Addresses{numeric});
    return id;
  }
  if (!valid_name(host)) {
    answer_soon(make_error(ResolveErrc::bad_name));
    return id;
  }

  pending_.back()->timer = loop_.run_after(options_.timeout, [this, id] { on_timeout(id); });
  bool spawn = false;
  {
    std::lock_guard lock(shared_->mu);
    shared_->queue.push_back({id, std::string(host), port});
    if (shared_->idle < shared_->queue.size() && shared_->threads < shared_->max_threads) {
      ++shared_->threads;
      spawn = true;
    }
  }
  if (spawn) {
    try {
      std::thread(Shared::work_loop, shared_).detach();
    } catch (const std::exception& e) {  // system_error (EAGAIN), or bad_alloc
      std::lock_guard lock(shared_->mu);
      --shared_->threads;
      if (shared_->threads == 0) {  // nobody will ever take the queue: fail what waits
        log_warn("resolver: cannot start a thread: {}", e.what());
        auto* se = dynamic_cast<const std::system_error*>(&e);
        std::error_code why = se ? se->code() : make_error(ENOMEM);
        for (auto& job : shared_->queue) answer_later(job.id, why);
        shared_->queue.clear();
      }
    }
  } else {
    shared_->work.notify_one();
  }
  return id;
}

bool Resolver::cancel(ResolveId id) noexcept {
  auto it = std::find_if(pending_.begin(), pending_.end(), [&](auto& r) { return r->id == id; });
  if (it == pending_.end()) return false;
  if ((*it)->timer) loop_.cancel_timer((*it)->timer);
  pending_.erase(it);
  std::lock_guard lock(shared_->mu);  // not looked up yet: no thread needs to
  auto& q = shared_->queue;
  q.erase(std::remove_if(q.begin(), q.end(), [&](auto& j) { return j.id == id; }), q.end());
  return true;
}

size_t Resolver::pending() const noexcept { return pending_.size(); }

void Resolver::answer(ResolveId id, Result<Addresses> result) {
  auto it = std::find_if(pending_.begin(), pending_.end(), [&](auto& r) { return r->id == id; });
  if (it == pending_.end()) return;  // cancelled, or timed out first
  std::unique_ptr<Request> req = std::move(*it);
  pending_.erase(it);
  if (req->timer) loop_.cancel_timer(req->timer);
  req->done(std::move(result));
}

void Resolver::on_timeout(ResolveId id) {
  for (auto& r : pending_)
    if (r->id == id) r->timer = {};  // fired: nothing to cancel
  {
    std::lock_guard lock(shared_->mu);
    auto& q = shared_->queue;
    q.erase(std::remove_if(q.begin(), q.end(), [&](auto& j) { return j.id == id; }), q.end());
  }
  answer(id, make_error(ResolveErrc::timed_out));
}

}  // namespace netloop
