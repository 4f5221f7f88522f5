// Backpressure: a client that sends 16 MiB without reading must not make the server
// buffer it; past the high-water mark the server stops reading from that peer.
#include "support.hpp"

using namespace nltest;

namespace {

constexpr size_t kHighWater = 256 * KiB;
constexpr size_t kLowWater = 64 * KiB;
constexpr size_t kScratch = 64 * KiB;  // one read into the loop's scratch area
constexpr size_t kTotal = 16 * MiB;

void backpressure(const std::string& backend) {
  ServerThread server;
  ServerThread::Config cfg;
  cfg.backend = backend;
  cfg.options.connection.high_water = kHighWater;
  cfg.options.connection.low_water = kLowWater;
  REQUIRE(!server.start(cfg));
  CAPTURE(server.backend());

  Sock s = connect_to(server.address(), {.timeout = 20s});
  REQUIRE(s.valid());
  const std::string data = random_bytes(kTotal, 0xbac4);

  // The sender blocks once the kernel buffers are full; the test thread does not read.
  std::atomic<size_t> sent{0};
  std::atomic<int> send_errno{0};
  std::thread sender([&] {
    size_t off = 0;
    while (off < data.size()) {
      size_t chunk = std::min<size_t>(data.size() - off, 64 * KiB);
      ssize_t n = ::send(s.get(), data.data() + off, chunk, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        send_errno = n < 0 ? errno : EPIPE;
        return;
      }
      off += size_t(n);
      sent = off;
    }
  });

  // Samples the server's buffers until told to stop, keeping the largest capacities.
  std::atomic<bool> sampling{true};
  std::atomic<size_t> max_in_cap{0}, max_out_cap{0}, max_pending{0};
  std::thread sampler([&] {
    try {
      while (sampling) {
        for (const auto& c : server.connections()) {
          max_in_cap = std::max(max_in_cap.load(), c.input_capacity);
          max_out_cap = std::max(max_out_cap.load(), c.output_capacity);
          max_pending = std::max(max_pending.load(), c.pending);
        }
        std::this_thread::sleep_for(2ms);
      }
    } catch (...) {
      // call() has recorded the failure.
    }
  });
  // On an early exit (a failed REQUIRE): unblock the sender, then join both threads.
  struct Joiner {
    std::thread& sender;
    std::thread& sampler;
    std::atomic<bool>& sampling;
    int fd;
    ~Joiner() {
      sampling = false;
      if (sampler.joinable()) sampler.join();
      if (sender.joinable()) {
        ::shutdown(fd, SHUT_RDWR);
        sender.join();
      }
    }
  } joiner{sender, sampler, sampling, s.get()};

  auto one = [&] {
    auto v = server.connections();
    REQUIRE(v.size() == 1);
    return v[0];
  };

  // The server's unsent output reaches the high-water mark while we do not read...
  bool engaged = wait_until([&] { return one().peak_output >= kHighWater; }, 15s);
  CHECK_MESSAGE(engaged, "the server's output never reached the high-water mark");

  // ...and from then on it reads nothing more from us.
  auto a = one();
  std::this_thread::sleep_for(250ms);
  auto b = one();
  MESSAGE("paused: client sent " << sent.load() << " bytes, server read " << b.bytes_in
                                 << ", wrote " << b.bytes_out << ", pending " << b.pending);
  CHECK_MESSAGE(a.bytes_in == b.bytes_in, "the server kept reading from a peer that does not read");
  CHECK(b.bytes_in < kTotal);
  CHECK(b.bytes_in - b.bytes_out <= kHighWater + kScratch);
  CHECK(b.pending >= kLowWater);

  // Now read everything back and check it.
  std::string got(kTotal, '\0');
  size_t received = 0;
  bool intact = true;
  while (received < kTotal) {
    ssize_t n = ::recv(s.get(), got.data() + received, kTotal - received, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      FAIL_CHECK("recv after " << received << " bytes: "
                 << (n == 0 ? "EOF" : std::strerror(errno)));
      break;
    }
    if (std::memcmp(got.data() + received, data.data() + received, size_t(n)) != 0) intact = false;
    received += size_t(n);
  }
  sender.join();
  CHECK(send_errno.load() == 0);
  CHECK(sent.load() == kTotal);
  CHECK(received == kTotal);
  CHECK(intact);

  auto end = one();
  sampling = false;
  sampler.join();
  MESSAGE("peak_output " << end.peak_output << ", max output capacity " << max_out_cap.load()
                         << ", max input capacity " << max_in_cap.load() << ", max pending "
                         << max_pending.load());
  CHECK(end.bytes_in == kTotal);
  CHECK(end.bytes_out == kTotal);
  CHECK(end.peak_output >= kHighWater);
  CHECK(end.peak_output <= kHighWater + kScratch);
  CHECK(max_pending.load() <= kHighWater + kScratch);
  // Storage follows the water mark (a growth step of slack), nowhere near 16 MiB.
  CHECK(max_out_cap.load() <= 2 * (kHighWater + kScratch));
  CHECK(max_in_cap.load() <= 2 * kScratch);
  // Once drained, the connection gives its buffers back.
  CHECK(wait_until([&] { return one().output_capacity == 0; }, 5s));
  CHECK(one().input_capacity == 0);

  s.reset();
  CHECK(wait_until([&] { return server.connection_count() == 0; }, 5s));
}

}  // namespace

TEST_CASE("backpressure: a peer that does not read cannot grow the server") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    backpressure(backend);
  }
}

TEST_CASE("backpressure with half-close: 16 MiB then SHUT_WR, read late, all echoed then EOF") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto journal = std::make_shared<Journal>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = journal_factory(journal);
    cfg.options.connection.high_water = kHighWater;
    cfg.options.connection.low_water = kLowWater;
    REQUIRE(!server.start(cfg));

    Sock s = connect_to(server.address(), {.timeout = 20s});
    REQUIRE(s.valid());
    const std::string data = random_bytes(kTotal, 0x4a1f);
    std::atomic<int> send_errno{0};
    std::thread sender([&] {
      if (!send_all(s.get(), data)) send_errno = errno ? errno : EPIPE;
      else ::shutdown(s.get(), SHUT_WR);
    });
    struct JoinOnExit {
      std::thread& t;
      int fd;
      ~JoinOnExit() {
        if (t.joinable()) {
          ::shutdown(fd, SHUT_RDWR);
          t.join();
        }
      }
    } join_on_exit{sender, s.get()};

    auto one = [&] {
      auto v = server.connections();
      return v.empty() ? ConnInfo{} : v[0];
    };
    CHECK(wait_until([&] { return one().peak_output >= kHighWater; }, 15s));
    std::this_thread::sleep_for(100ms);  // the server sits paused for a while

    std::string got(kTotal, '\0');
    size_t received = 0;
    while (received < kTotal) {
      ssize_t n = ::recv(s.get(), got.data() + received, kTotal - received, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      received += size_t(n);
    }
    CHECK(received == kTotal);
    CHECK(diff_bytes(got, data) == "");
    CHECK(to_cstr(wait_end(s.get(), 10s)) == std::string("eof"));
    sender.join();
    CHECK(send_errno.load() == 0);

    CHECK(wait_until([&] { return journal->closed.load() == 1; }, 5s));
    auto closes = journal->close_infos();
    REQUIRE(closes.size() == 1);
    CHECK(to_string(closes[0].reason) == "peer");
    CHECK(!closes[0].error);
    CHECK(wait_until([&] { return server.connection_count() == 0; }, 5s));
  }
}
