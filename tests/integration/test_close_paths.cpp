// Close paths over real sockets: the peer resets, the handler closes or aborts from
// inside on_data, and the listener goes away with live connections.
#include "support.hpp"

using namespace nltest;
using netloop::CloseReason;

namespace {

// Random bytes from an alphabet without the handler's trigger bytes ('q', 'x').
std::string plain_bytes(size_t n, uint64_t seed) {
  std::string s = random_bytes(n, seed);
  for (auto& c : s) c = char('a' + (static_cast<unsigned char>(c) % 16));  // a..p
  return s;
}

std::string reasons_of(const std::vector<netloop::CloseInfo>& v) {
  std::string out;
  for (const auto& ci : v) {
    if (!out.empty()) out += ", ";
    out += std::string(to_string(ci.reason));
    if (ci.error) out += " (" + ci.error.message() + ")";
  }
  return out;
}

void reset_with_linger(Sock& s) {
  linger lg{1, 0};
  REQUIRE(::setsockopt(s.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
  s.reset();  // close() with a zero linger sends RST
}

}  // namespace

TEST_CASE("a client reset mid-transfer: the server survives and serves the next client") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto journal = std::make_shared<Journal>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = journal_factory(journal);
    REQUIRE(!server.start(cfg));

    // 1. Reset while the server has output buffered (we send, never read).
    {
      Sock s = connect_to(server.address(), {.rcvbuf = 16 * KiB});
      REQUIRE(s.valid());
      set_nonblocking(s.get());
      std::string data = random_bytes(16 * MiB, 4);
      size_t sent = 0;
      bool buffered = false;
      auto deadline = SteadyClock::now() + 15s;
      while (!buffered && sent < data.size() && SteadyClock::now() < deadline) {
        ssize_t n = ::send(s.get(), data.data() + sent, std::min<size_t>(64 * KiB, data.size() - sent),
                           MSG_NOSIGNAL);
        if (n > 0) {
          sent += size_t(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          pollfd p{s.get(), POLLOUT, 0};
          ::poll(&p, 1, 20);
        } else if (n < 0 && errno != EINTR) {
          FAIL("send: " << std::strerror(errno));
        }
        auto v = server.connections();
        buffered = v.size() == 1 && v[0].pending > 0;
      }
      REQUIRE_MESSAGE(buffered, "the server never had output buffered (sent " << sent << ")");
      reset_with_linger(s);
      CHECK(wait_until([&] { return server.connection_count() == 0; }, 5s));
      CHECK(wait_until([&] { return journal->closed.load() == 1; }, 5s));
      auto closes = journal->close_infos();
      REQUIRE(closes.size() == 1);
      CAPTURE(reasons_of(closes));
      CHECK(closes[0].reason == CloseReason::reset);
      CHECK((closes[0].error == std::errc::connection_reset ||
             closes[0].error == std::errc::broken_pipe));
    }

    // 2. Reset of an idle connection (the server is only reading).
    {
      Sock s = connect_to(server.address());
      REQUIRE(s.valid());
      CHECK(echo_once(s.get(), "idle") == "idle");
      reset_with_linger(s);
      CHECK(wait_until([&] { return journal->closed.load() == 2; }, 5s));
      auto closes = journal->close_infos();
      REQUIRE(closes.size() == 2);
      CAPTURE(reasons_of(closes));
#ifdef __linux__
      if (backend == "kqueue" && closes[1].reason == CloseReason::peer) {
        // libkqueue reads SO_ERROR itself to fill EV_EOF's fflags, which clears it: the
        // next recv() then says end of stream rather than ECONNRESET.
        MESSAGE("kqueue on Linux (libkqueue): an idle connection's reset reads as end of stream");
      } else
#endif
      CHECK(closes[1].reason == CloseReason::reset);
    }

    // 3. The server still serves.
    Sock s = connect_to(server.address());
    REQUIRE(s.valid());
    std::string data = random_bytes(256 * KiB, 5);
    Exchange ex = exchange(s.get(), data, false, data.size(), false, 5);
    CHECK(ex.error == 0);
    CHECK(diff_bytes(ex.received, data) == "");
    s.reset();
    CHECK(wait_until([&] { return server.connection_count() == 0; }, 5s));
    CHECK(wait_until([&] { return journal->live() == 0; }, 5s));
    CHECK(journal->open_in_on_close.load() == 0);
    CHECK(server.stats().accepted == 3);
  }
}

TEST_CASE("a handler that closes from inside on_data") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto journal = std::make_shared<Journal>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = journal_factory(journal, {.close_on = 'q'});
    REQUIRE(!server.start(cfg));

    // A short message: what precedes 'q' comes back, then an orderly end of stream.
    {
      Sock s = connect_to(server.address());
      REQUIRE(s.valid());
      REQUIRE(send_all(s.get(), "hello q"));
      CHECK(recv_exact(s.get(), 6) == "hello ");
      CHECK(to_cstr(wait_end(s.get())) == std::string("eof"));
    }
    // 1 MiB then 'q' while the output is still pushed back: all of it is flushed first.
    {
      Sock s = connect_to(server.address(), {.rcvbuf = 32 * KiB});
      REQUIRE(s.valid());
      std::string data = plain_bytes(1 * MiB, 8);
      Exchange ex = exchange(s.get(), data + "q", false, 0, /*until_eof=*/true, 8);
      CHECK(ex.error == 0);
      CHECK_FALSE(ex.timed_out);
      CHECK(ex.eof);
      CHECK(ex.received.size() == data.size());
      CHECK(diff_bytes(ex.received, data) == "");
    }
    CHECK(wait_until([&] { return journal->closed.load() == 2; }, 5s));
    CHECK(wait_until([&] { return server.connection_count() == 0; }, 5s));
    // Each handler object is destroyed once its connection is gone.
    CHECK(wait_until([&] { return journal->destroyed.load() == 2; }, 5s));
    CHECK(journal->created.load() == 2);
    CHECK(journal->open_in_on_close.load() == 0);
    auto closes = journal->close_infos();
    CAPTURE(reasons_of(closes));
    REQUIRE(closes.size() == 2);
    for (const auto& ci : closes) {
      CHECK(ci.reason == CloseReason::local);
      CHECK(!ci.error);
    }
  }
}

TEST_CASE("a handler that aborts from inside on_data resets the client") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto journal = std::make_shared<Journal>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = journal_factory(journal, {.abort_on = 'x'});
    REQUIRE(!server.start(cfg));

    {
      Sock s = connect_to(server.address());
      REQUIRE(s.valid());
      CHECK(echo_once(s.get(), "abc") == "abc");
      REQUIRE(send_all(s.get(), "x"));
      CHECK(to_cstr(wait_end(s.get())) == std::string("reset"));
    }
    // Abort with output pushed back: it is dropped and the client sees a reset.
    {
      Sock s = connect_to(server.address(), {.rcvbuf = 16 * KiB});
      REQUIRE(s.valid());
      std::string data = plain_bytes(2 * MiB, 9);
      Exchange ex = exchange(s.get(), data + "x", false, 0, /*until_eof=*/true, 9);
      CHECK_FALSE(ex.timed_out);
      CHECK_FALSE(ex.eof);
      CHECK(ex.error == ECONNRESET);
      CHECK(ex.received.size() <= data.size());
      CHECK(diff_bytes(ex.received, std::string_view(data).substr(0, ex.received.size())) == "");
    }
    CHECK(wait_until([&] { return journal->destroyed.load() == 2; }, 5s));
    CHECK(server.connection_count() == 0);
    CHECK(journal->open_in_on_close.load() == 0);
    auto closes = journal->close_infos();
    CAPTURE(reasons_of(closes));
    REQUIRE(closes.size() == 2);
    for (const auto& ci : closes) CHECK(ci.reason == CloseReason::aborted);

    // And the server goes on.
    Sock s = connect_to(server.address());
    REQUIRE(s.valid());
    CHECK(echo_once(s.get(), "still here") == "still here");
  }
}

TEST_CASE("destroying the listener closes live connections with reason shutdown") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto journal = std::make_shared<Journal>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = journal_factory(journal, {.close_on = 'q'});
    // High enough that the connection below reads all it is sent without pausing.
    cfg.options.connection.high_water = 32 * MiB;
    cfg.options.connection.low_water = 1 * MiB;
    REQUIRE(!server.start(cfg));
    auto address = server.address();

    std::vector<Sock> idle;
    for (int i = 0; i < 4; ++i) {
      idle.push_back(connect_to(address));
      REQUIRE(idle.back().valid());
      std::string msg = "ping " + std::to_string(i);
      CHECK(echo_once(idle.back().get(), msg) == msg);
    }
    // One more that is closing with output still pushed back (it sent 6 MiB and 'q' and
    // reads nothing): the listener's end must close it too, exactly once.
    Sock closing = connect_to(address, {.rcvbuf = 16 * KiB});
    REQUIRE(closing.valid());
    {
      std::string data = plain_bytes(6 * MiB, 10) + "q";
      set_nonblocking(closing.get());
      size_t sent = 0;
      auto deadline = SteadyClock::now() + 10s;
      bool pushed_back = false;
      while (SteadyClock::now() < deadline) {
        if (sent < data.size()) {
          ssize_t n = ::send(closing.get(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
          if (n > 0) sent += size_t(n);
          else {
            pollfd p{closing.get(), POLLOUT, 0};
            ::poll(&p, 1, 10);
          }
        }
        auto v = server.connections();
        // The connection that has read everything ('q' included) and is still writing.
        for (const auto& c : v) pushed_back |= c.bytes_in == data.size() && c.pending > 0;
        if (pushed_back) break;
      }
      REQUIRE_MESSAGE(pushed_back, "no closing connection with pending output (sent " << sent << ")");
    }
    REQUIRE(server.connection_count() == 5);
    CHECK(journal->closed.load() == 0);

    server.destroy_listener();
    // The listener's destructor ran on the loop thread and returned: every handler has
    // heard on_close and is gone.
    CHECK(journal->closed.load() == 5);
    CHECK(journal->destroyed.load() == 5);
    CHECK(journal->open_in_on_close.load() == 0);
    auto closes = journal->close_infos();
    CAPTURE(reasons_of(closes));
    CHECK(closes.size() == 5);
    for (const auto& ci : closes) CHECK(ci.reason == CloseReason::shutdown);

    for (auto& s : idle) CHECK(to_cstr(wait_end(s.get())) == std::string("eof"));
    // The listening socket is closed too.
    Sock late = connect_to(address);
    int err = errno;
    CHECK_FALSE(late.valid());
    if (!late.valid()) CHECK(err == ECONNREFUSED);
  }
}

TEST_CASE("many clients reset at once while the server is writing to each of them") {
  constexpr size_t kClients = 50;
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto journal = std::make_shared<Journal>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = journal_factory(journal);
    REQUIRE(!server.start(cfg));

    std::vector<Sock> clients;
    for (size_t i = 0; i < kClients; ++i) {
      clients.push_back(connect_to(server.address(), {.rcvbuf = 16 * KiB}));
      REQUIRE(clients.back().valid());
      set_nonblocking(clients.back().get());
    }
    // Each sends (never reads) until the server has output pushed back on every one.
    const std::string chunk = random_bytes(64 * KiB, 11);
    size_t buffered = 0;
    auto deadline = SteadyClock::now() + 15s;
    while (SteadyClock::now() < deadline) {
      for (auto& c : clients)
        for (int k = 0; k < 4; ++k)
          if (::send(c.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL) <= 0) break;
      auto v = server.connections();
      buffered = 0;
      for (const auto& ci : v) buffered += ci.pending > 0 ? 1 : 0;
      if (buffered == kClients) break;
      std::this_thread::sleep_for(5ms);
    }
    REQUIRE_MESSAGE(buffered == kClients, "only " << buffered << " connections had output pushed back");

    for (auto& c : clients) reset_with_linger(c);
    CHECK(wait_until([&] { return server.connection_count() == 0; }, 10s));
    CHECK(wait_until([&] { return journal->destroyed.load() == int(kClients); }, 5s));
    auto closes = journal->close_infos();
    CHECK(closes.size() == kClients);
    size_t resets = 0;
    for (const auto& ci : closes) resets += ci.reason == CloseReason::reset ? 1 : 0;
    CAPTURE(reasons_of(closes));
    CHECK(resets == kClients);
    CHECK(journal->open_in_on_close.load() == 0);

    Sock s = connect_to(server.address());
    REQUIRE(s.valid());
    CHECK(echo_once(s.get(), "after the storm") == "after the storm");
  }
}

TEST_CASE("a factory that returns null refuses the connection: closed at once, counted") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = [] { return std::unique_ptr<netloop::StreamHandler>(); };
    REQUIRE(!server.start(cfg));
    for (int i = 0; i < 3; ++i) {
      Sock s = connect_to(server.address());
      REQUIRE(s.valid());
      send_all(s.get(), "hello");  // may fail once the server has closed: that is the point
      std::string end = to_cstr(wait_end(s.get()));
      CHECK((end == "eof" || end == "reset"));
    }
    CHECK(wait_until([&] {
      return server.call([](netloop::EventLoop&, netloop::TcpListener* l) {
        return l->stats().factory_refused.get();
      }) == 3;
    }, 5s));
    CHECK(server.connection_count() == 0);
  }
}
