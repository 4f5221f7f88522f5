// ProxyStage: the PROXY protocol header reader an accepted connection runs before TLS and
// before its handler's on_open (ListenerOptions::proxy_protocol).
//
// It lets the parser judge the bytes seen so far. Before TLS it peeks (recv MSG_PEEK) and
// takes off the socket only the bytes the parser says belong to the header, so the
// ClientHello stays in the socket for OpenSSL. On a plain connection one recv takes the
// header and what follows it (the first request), and the rest is kept for the
// connection's first reads (take_rest).
#pragma once

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "netloop/address.hpp"
#include "netloop/event_loop.hpp"
#include "netloop/proxy_protocol.hpp"
#include "netloop/proxy_protocol_options.hpp"

namespace netloop {

struct ProxyProtocolStats;

class ProxyStage {
 public:
  enum class Step : uint8_t { want_read, done, failed };

  ProxyStage(EventLoop& loop, std::shared_ptr<const ProxyProtocolOptions> options,
             ProxyProtocolStats* stats) noexcept;
  ~ProxyStage();
  ProxyStage(const ProxyStage&) = delete;
  ProxyStage& operator=(const ProxyStage&) = delete;

  // Arms the header timeout: `expired` runs if the header is not whole in time.
  void arm_timeout(std::function<void()> expired);
  // A shorter timeout than the options' (a refusal's: it must not hold a descriptor long).
  void cap_timeout(Duration cap) noexcept { cap_ = cap; }
  // Reads what `fd` holds of the header. want_read: wait for readability and call again.
  // `peer` and `local` (the socket's) name the connection in the log line of a failure.
  // keep_rest: the bytes after the header may be read with it and kept for take_rest()
  // (plain connections); otherwise they are only peeked at and stay in the socket (TLS:
  // OpenSSL reads the socket itself).
  Step advance(int fd, const Address& peer, const Address& local, bool keep_rest = false);
  // Bytes read after the header, for the connection's first reads.
  bool has_rest() const noexcept { return !rest_.empty(); }
  size_t take_rest(void* into, size_t n) noexcept;
  // The timeout expired: counts and logs it; the stage has failed.
  void timed_out(const Address& peer, const Address& local);
  // The socket cannot be watched any more, or the connection closes (a drain, the listener
  // going away) while the header is still awaited: the stage has failed (counted as aborted).
  void abandon() noexcept;

  // The listener defers its accepts until the peer's first bytes (TCP_DEFER_ACCEPT): the
  // header is usually there at accept, worth reading at once.
  void expect_header_with_accept() noexcept { with_accept_ = true; }
  bool header_comes_with_accept() const noexcept { return with_accept_; }

  bool passed() const noexcept { return state_ == State::done; }
  bool running() const noexcept { return state_ == State::running; }
  // Once passed(): the header, and the client it names (null for LOCAL, UNSPEC, UNIX).
  const proxy_protocol::Header* header() const noexcept { return passed() ? &header_ : nullptr; }
  const Address* client() const noexcept { return has_client_ ? &client_ : nullptr; }

 private:
  enum class State : uint8_t { running, done, failed };
  enum class Why : uint8_t { invalid, aborted, timeout };
  Step fail(Why why, std::string_view error, const Address& peer, const Address& local);
  Step finish();
  void cancel_timer() noexcept;

  EventLoop& loop_;
  std::shared_ptr<const ProxyProtocolOptions> options_;
  ProxyProtocolStats* stats_;
  State state_ = State::running;
  bool has_client_ = false;
  bool with_accept_ = false;
  TimerId timer_;
  Duration cap_ = Duration::max();
  std::vector<uint8_t> seen_;  // a header coming in pieces: its bytes taken so far
  proxy_protocol::Header header_;
  std::vector<uint8_t> rest_;  // read after the header (keep_rest), not yet taken
  size_t rest_taken_ = 0;
  Address client_;
};

// Accept-time check of a listener expecting headers: whether `peer` may send one. An
// untrusted peer is counted and logged (rate-limited); the caller closes it unread.
bool proxy_peer_trusted(const ProxyProtocolOptions& options, ProxyProtocolStats& stats,
                        const Address& peer, const Address& local);

// The header's source as a socket address (inet or inet6 only).
Address address_of(const proxy_protocol::Header& header) noexcept;

}  // namespace netloop
