// The write-stall timeout: a peer that sends but never reads is reset once its buffered
// echo has made no progress for write_timeout; a slow peer that keeps reading is not.
#include <doctest/doctest.h>

#include <poll.h>
#include <thread>

#include "support.hpp"

using namespace nltest;
using netloop::CloseReason;

namespace {

// Sends and never reads until the server gives up on us (a send fails: reset), or
// `limit` bytes or 10 s. True when the server reset us. Stopping at the first pause instead
// would be wrong: a server that is merely slow for a moment (a loaded machine, a
// sanitizer) would leave us stopping with everything still fitting in the kernels'
// buffers, and nothing to time out.
bool send_until_reset(int fd, size_t limit) {
  set_nonblocking(fd);
  std::string chunk = random_bytes(64 * KiB, 7);
  size_t sent = 0;
  bool reset = false;
  auto deadline = SteadyClock::now() + 10s;
  while (sent < limit && SteadyClock::now() < deadline) {
    ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += size_t(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    reset = n < 0 && (errno == ECONNRESET || errno == EPIPE);
    break;
  }
  set_nonblocking(fd, false);
  return reset;
}

ServerThread::Config config(const std::string& backend, std::shared_ptr<Journal> j) {
  ServerThread::Config cfg;
  cfg.backend = backend;
  cfg.factory = journal_factory(j);
  cfg.options.connection.high_water = 64 * KiB;
  cfg.options.connection.low_water = 16 * KiB;
  cfg.options.connection.write_timeout = 300ms;
  return cfg;
}

}  // namespace

TEST_CASE("write timeout: a peer that never reads is reset, a slow reader is not") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto journal = std::make_shared<Journal>();
    ServerThread server;
    REQUIRE(!server.start(config(backend, journal)));

    // A peer that never reads: its echo backs up, makes no progress, and is reset.
    {
      Sock s = connect_to(server.address(), {.rcvbuf = 16 * KiB});
      REQUIRE(s.valid());
      CHECK(send_until_reset(s.get(), 256 * MiB));
      CHECK(wait_until([&] { return journal->closed.load() == 1; }, 10s));
      auto closes = journal->close_infos();
      REQUIRE(closes.size() == 1);
      CHECK(closes[0].reason == CloseReason::error);
      CHECK(closes[0].error == std::errc::timed_out);
    }

    // A slow reader: 16 KiB every 100 ms for 1.5 s, well past the 300 ms timeout in total,
    // but never 300 ms without progress. Not reset; everything comes back.
    {
      Sock s = connect_to(server.address(), {.rcvbuf = 16 * KiB});
      REQUIRE(s.valid());
      std::string data = random_bytes(240 * KiB, 9);
      std::thread writer([&] { send_all(s.get(), data); });
      std::string got;
      auto t0 = SteadyClock::now();
      while (got.size() < data.size() && SteadyClock::now() - t0 < 20s) {
        std::this_thread::sleep_for(100ms);
        got += recv_exact(s.get(), std::min<size_t>(16 * KiB, data.size() - got.size()));
      }
      writer.join();
      CHECK(diff_bytes(got, data) == "");
      CHECK(journal->closed.load() == 1);  // still only the first connection
    }
  }
}
