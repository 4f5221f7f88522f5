// ProxyStage: read (or, before TLS, peek at) the header, parse it, and take only its bytes
// off the socket or keep what followed it for the connection.
#include "proxy_stage.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <span>
#include <sys/socket.h>

#include "netloop/log.hpp"
#include "netloop/tcp_listener.hpp"

namespace netloop {
namespace {

// Bytes peeked at a time: more than any usual header (a v1 line is at most 107 bytes, a
// v2 header from HAProxy a few dozen), little enough to be cheap when the header is
// followed at once by a large first request.
constexpr size_t kPeekChunk = 512;

// The first failures of each kind, then one in a thousand: a flood of bad headers must
// not become a flood of log lines.
bool worth_logging(uint64_t count) noexcept { return count <= 10 || count % 1000 == 0; }

// recv() without EINTR; -1 with errno otherwise.
ssize_t receive(int fd, void* into, size_t n, int flags) noexcept {
  for (;;) {
    ssize_t r = ::recv(fd, into, n, flags);
    if (r >= 0 || errno != EINTR) return r;
  }
}

}  // namespace

ProxyStage::ProxyStage(EventLoop& loop, std::shared_ptr<const ProxyProtocolOptions> options,
                       ProxyProtocolStats* stats) noexcept
    : loop_(loop), options_(std::move(options)), stats_(stats) {}

ProxyStage::~ProxyStage() { cancel_timer(); }

void ProxyStage::cancel_timer() noexcept {
  if (timer_) loop_.cancel_timer(std::exchange(timer_, {}));
}

void ProxyStage::arm_timeout(std::function<void()> expired) {
  cancel_timer();
  timer_ = loop_.run_after(std::min(options_->header_timeout, cap_), [this, expired = std::move(expired)] {
    timer_ = {};
    expired();
  });
}

ProxyStage::Step ProxyStage::advance(int fd, const Address& peer, const Address& local,
                                     bool keep_rest) {
  if (state_ != State::running) return state_ == State::done ? Step::done : Step::failed;
  // Past the longest header the parser may accept it has said invalid; the bound here only
  // keeps this loop finite whatever it says.
  const size_t cap = std::max(proxy_protocol::kV1MaxLength, options_->parse.v2_max_length);
  // A whole header in one read (the usual case) is parsed where it was read: seen_ is
  // filled only when the header comes in pieces.
  uint8_t chunk[kPeekChunk];
  for (;;) {
    const size_t taken = seen_.size();
    if (taken >= cap) return fail(Why::invalid, "header longer than the limit", peer, local);
    // keep_rest: read, and keep what follows the header for the connection's first reads
    // (take_rest), so a header and the request after it cost one recv, as the request
    // alone would. Otherwise peek, and take off the socket only the header's bytes.
    ssize_t n = receive(fd, chunk, std::min(kPeekChunk, cap - taken), keep_rest ? 0 : MSG_PEEK);
    if (n < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return Step::want_read;
      return fail(Why::aborted, std::strerror(err), peer, local);
    }
    if (n == 0)
      return fail(Why::aborted,
                  taken ? "the peer closed before the header was whole"
                        : "the peer closed without sending a header",
                  peer, local);
    // Every byte so far: those taken before, then these.
    if (taken) seen_.insert(seen_.end(), chunk, chunk + n);
    const std::span<const uint8_t> bytes =
        taken ? std::span<const uint8_t>(seen_) : std::span<const uint8_t>(chunk, size_t(n));
    auto result = proxy_protocol::parse(bytes, header_, options_->parse);
    if (result.status == proxy_protocol::Status::invalid)
      return fail(Why::invalid, result.error, peer, local);
    const bool done = result.status == proxy_protocol::Status::done;
    // A stream listener's client came over a stream: a DGRAM header names some other flow.
    if (done && header_.command == proxy_protocol::Command::proxy &&
        header_.transport == proxy_protocol::Transport::datagram)
      return fail(Why::invalid, "v2: a DGRAM header on a stream listener", peer, local);
    // need_more: every byte seen is the header's (the parser's contract), so all of them
    // can be taken. done: only the header's.
    const size_t header_end = done ? header_.length : bytes.size();
    if (header_end < taken || header_end > bytes.size())  // a parser bug: never read past it
      return fail(Why::invalid, "the parser misreported the header's length", peer, local);
    if (keep_rest) {
      if (done) rest_.assign(bytes.begin() + std::ptrdiff_t(header_end), bytes.end());
    } else if (size_t want = header_end - taken; want > 0) {
      // The bytes were peeked, so they are all there (read into the chunk again: the same
      // bytes): anything else is a failing socket.
      ssize_t got = receive(fd, chunk, want, 0);
      if (got != ssize_t(want))
        return fail(Why::aborted, got < 0 ? std::strerror(errno) : "short read of peeked bytes",
                    peer, local);
    }
    if (done) return finish();
    if (!taken) seen_.assign(chunk, chunk + n);  // the header's first piece
  }
}

size_t ProxyStage::take_rest(void* into, size_t n) noexcept {
  size_t k = std::min(n, rest_.size() - rest_taken_);
  std::memcpy(into, rest_.data() + rest_taken_, k);
  rest_taken_ += k;
  if (rest_taken_ == rest_.size()) {
    std::vector<uint8_t>().swap(rest_);
    rest_taken_ = 0;
  }
  return k;
}

ProxyStage::Step ProxyStage::finish() {
  cancel_timer();
  state_ = State::done;
  std::vector<uint8_t>().swap(seen_);  // the buffer lives only while the stage runs
  if (header_.carries_client_address()) {
    client_ = address_of(header_);
    has_client_ = true;
  }
  ++stats_->accepted;
  return Step::done;
}

ProxyStage::Step ProxyStage::fail(Why why, std::string_view error, const Address& peer,
                                  const Address& local) {
  cancel_timer();
  state_ = State::failed;
  std::vector<uint8_t>().swap(seen_);
  Counter& counter = why == Why::invalid   ? stats_->invalid
                     : why == Why::timeout ? stats_->timeouts
                                           : stats_->aborted;
  ++counter;
  if (worth_logging(counter.get()))
    log_warn("listener {}: PROXY header from {}: {}; closed ({} {} so far)", local, peer, error,
             counter.get(),
             why == Why::invalid ? "invalid" : why == Why::timeout ? "timed out" : "cut short");
  return Step::failed;
}

void ProxyStage::timed_out(const Address& peer, const Address& local) {
  if (state_ != State::running) return;
  timer_ = {};
  fail(Why::timeout, "no whole header within the timeout", peer, local);
}

void ProxyStage::abandon() noexcept {
  if (state_ != State::running) return;
  cancel_timer();
  state_ = State::failed;
  ++stats_->aborted;
}

bool proxy_peer_trusted(const ProxyProtocolOptions& options, ProxyProtocolStats& stats,
                        const Address& peer, const Address& local) {
  if (options.trusts(peer)) return true;
  ++stats.untrusted;
  if (worth_logging(stats.untrusted.get()))
    log_warn("listener {}: {} is not among the trusted PROXY protocol peers; closed unread "
             "({} so far)",
             local, peer, stats.untrusted.get());
  return false;
}

Address address_of(const proxy_protocol::Header& header) noexcept {
  const auto& src = header.source;
  if (header.family == proxy_protocol::Family::inet) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(src.port);
    std::memcpy(&sin.sin_addr, src.address.data(), 4);
    return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
  }
  if (header.family == proxy_protocol::Family::inet6) {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(src.port);
    std::memcpy(&sin6.sin6_addr, src.address.data(), 16);
    return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
  }
  return Address();
}

}  // namespace netloop
