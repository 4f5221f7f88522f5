// The handler API's newer calls over real loopback sockets (TcpConnection through a
// TcpListener): gather send, close with the handler's own reason, the idle timeout, and
// restart_timer re-arming a timer that fired. Each on every usable backend.
#include "support.hpp"

#include <cstdio>

using namespace nltest;
using netloop::Buffer;
using netloop::CloseInfo;
using netloop::CloseReason;
using netloop::Connection;
using netloop::Duration;
using netloop::EventLoop;
using netloop::TcpListener;
using netloop::TimerId;

namespace {

// What the handlers of one server saw (written on the loop thread).
struct Record {
  std::atomic<int> closed{0};
  std::mutex m;
  std::vector<CloseInfo> closes;
  std::vector<size_t> peak_output;  // at the close

  std::vector<CloseInfo> close_infos() {
    std::lock_guard lock(m);
    return closes;
  }
};

// Records on_close; the tests' handlers derive from it.
class Recording : public netloop::StreamHandler {
 public:
  explicit Recording(std::shared_ptr<Record> r) : r_(std::move(r)) {}
  void on_close(Connection&, const CloseInfo& info) override {
    {
      std::lock_guard lock(r_->m);
      r_->closes.push_back(info);
    }
    ++r_->closed;
  }

 protected:
  std::shared_ptr<Record> r_;
};

template <class Handler, class... Args>
netloop::StreamHandlerFactory factory(std::shared_ptr<Record> r, Args... args) {
  return [r, args...] { return std::make_unique<Handler>(r, args...); };
}

// The loop's counters, read on the loop thread.
netloop::LoopStats loop_stats(ServerThread& server) {
  return server.call([](EventLoop& loop, TcpListener*) { return loop.stats(); });
}

// Reads `n` bytes a little at a time (4 KiB, with a pause every 64 KiB), so that the
// server's output backs up behind a small receive buffer.
std::string read_slowly(int fd, size_t n, std::chrono::milliseconds timeout) {
  std::string out;
  std::vector<char> buf(4 * KiB);
  auto deadline = SteadyClock::now() + timeout;
  while (out.size() < n && SteadyClock::now() < deadline) {
    ssize_t r = ::recv(fd, buf.data(), std::min(buf.size(), n - out.size()), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buf.data(), size_t(r));
    if (out.size() % (64 * KiB) < size_t(r)) std::this_thread::sleep_for(2ms);
  }
  return out;
}

// Gather send: on "go <pieces> <bytes>\n", sends `bytes` bytes of a known pattern cut
// into `pieces` pieces of uneven sizes (empty ones among them) in one gather call, then
// "|" and a short tail in a second one (behind the first's backlog, if any).
class GatherSender final : public Recording {
 public:
  using Recording::Recording;

  void on_data(Connection& conn, Buffer& in) override {
    size_t eol = in.view().find('\n');
    if (eol == std::string_view::npos) return;
    size_t pieces = 0, bytes = 0;
    std::sscanf(std::string(in.view().substr(0, eol)).c_str(), "go %zu %zu", &pieces, &bytes);
    in.consume(eol + 1);
    data_ = random_bytes(bytes, pieces * 7919 + bytes);
    std::vector<std::string_view> views = cut(data_, pieces);
    conn.send(std::span<const std::string_view>(views));
    conn.send({"|", "", "tail", "\n"});
  }

  // `pieces` consecutive views of `data`, of uneven sizes; every seventh one empty.
  static std::vector<std::string_view> cut(std::string_view data, size_t pieces) {
    std::vector<std::string_view> out;
    std::mt19937_64 rng(pieces);
    size_t pos = 0;
    for (size_t i = 0; i < pieces; ++i) {
      size_t left = data.size() - pos;
      size_t n = std::min(left, 1 + rng() % (2 * data.size() / pieces + 1));
      if (i % 7 == 6) n = 0;
      if (i + 1 == pieces) n = left;
      out.push_back(data.substr(pos, n));
      pos += n;
    }
    return out;
  }

 private:
  std::string data_;
};

// On "BAD\n": an error line, then close(code, text).
class ProtocolCloser final : public Recording {
 public:
  using Recording::Recording;
  void on_data(Connection& conn, Buffer& in) override {
    if (in.view().find("BAD\n") == std::string_view::npos) {
      conn.send(in.view());
      in.consume(in.size());
      return;
    }
    in.consume(in.size());
    conn.send("-ERR unknown command\n");
    conn.close(netloop::make_error(EPROTO), "unknown command");
  }
};

// Echoes, with an idle timeout set in on_open.
class IdleEcho final : public Recording {
 public:
  IdleEcho(std::shared_ptr<Record> r, Duration idle) : Recording(std::move(r)), idle_(idle) {}
  void on_open(Connection& conn) override { conn.set_idle_timeout(idle_); }
  void on_data(Connection& conn, Buffer& in) override {
    conn.send(in.view());
    in.consume(in.size());
  }

 private:
  Duration idle_;
};

// A one-shot timer started in on_open sends "tick\n" when it fires; each "again\n"
// restarts it (300 ms) and answers whether it was still pending ("pending\n") or had
// fired and is now re-armed ("rearmed\n").
class Ticker final : public Recording {
 public:
  using Recording::Recording;
  void on_open(Connection& conn) override {
    timer_ = conn.start_timer(netloop::milliseconds(50), Duration::zero(),
                              [](Connection& c) { c.send("tick\n"); });
  }
  void on_data(Connection& conn, Buffer& in) override {
    for (;;) {
      size_t eol = in.view().find('\n');
      if (eol == std::string_view::npos) return;
      bool again = in.view().substr(0, eol) == "again";
      in.consume(eol + 1);
      if (!again) continue;
      bool pending = conn.restart_timer(timer_, netloop::milliseconds(300));
      conn.send(pending ? "pending\n" : "rearmed\n");
    }
  }

 private:
  TimerId timer_;
};

// Reads one line (blocking, bounded by the socket's receive timeout).
std::string read_line(int fd) {
  std::string line;
  char c;
  while (::recv(fd, &c, 1, 0) == 1) {
    line += c;
    if (c == '\n') break;
  }
  return line;
}

}  // namespace

TEST_CASE("gather send over TCP: the pieces arrive intact and in order, past 64 pieces and 1 MiB to a slow reader") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto record = std::make_shared<Record>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = factory<GatherSender>(record);
    REQUIRE(!server.start(cfg));

    struct Case {
      size_t pieces;
      size_t bytes;
      bool slow;
    };
    // The last is more than the kernel's send buffer can take at once (tcp_wmem's maximum
    // is 4 MiB by default): the connection must buffer part of it.
    for (Case c : {Case{3, 100, false}, Case{64, 64 * KiB, false}, Case{65, 200 * KiB, false},
                   Case{100, 3 * MiB / 2, true}, Case{500, 8 * MiB, true}}) {
      CAPTURE(c.pieces);
      CAPTURE(c.bytes);
      Sock s = connect_to(server.address(), {.rcvbuf = c.slow ? int(16 * KiB) : 0});
      REQUIRE(s.valid());
      std::string request = "go " + std::to_string(c.pieces) + " " + std::to_string(c.bytes) + "\n";
      REQUIRE(send_all(s.get(), request));
      std::string want = random_bytes(c.bytes, c.pieces * 7919 + c.bytes) + "|tail\n";
      std::string got =
          c.slow ? read_slowly(s.get(), want.size(), 20s) : recv_exact(s.get(), want.size());
      CHECK(diff_bytes(got, want) == "");
      if (c.slow) {
        auto conns = server.connections();
        REQUIRE(conns.size() == 1);
        CHECK(conns[0].pending == 0);
        // The kernel pushed back: the connection buffered part of the gather send.
        if (c.bytes > 4 * MiB) CHECK(conns[0].peak_output > 0);
      }
      s.reset();
      CHECK(wait_until([&] { return server.connection_count() == 0; }, 5s));
    }
    CHECK(record->closed.load() == 5);
  }
}

TEST_CASE("close(code, text) over TCP: the peer gets the output then end of stream; on_close and closed_protocol see the reason") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto record = std::make_shared<Record>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = factory<ProtocolCloser>(record);
    REQUIRE(!server.start(cfg));

    Sock s = connect_to(server.address());
    REQUIRE(s.valid());
    CHECK(echo_once(s.get(), "hello\n") == "hello\n");
    REQUIRE(send_all(s.get(), "BAD\n"));
    CHECK(read_line(s.get()) == "-ERR unknown command\n");
    CHECK(to_cstr(wait_end(s.get(), 5s)) == std::string("eof"));
    s.reset();  // the server lingers until our end of stream
    REQUIRE(wait_until([&] { return record->closed.load() == 1; }, 5s));
    auto closes = record->close_infos();
    REQUIRE(closes.size() == 1);
    CHECK(closes[0].reason == CloseReason::protocol);
    CHECK(closes[0].error == netloop::make_error(EPROTO));
    CHECK(closes[0].text == "unknown command");
    auto st = loop_stats(server);
    CHECK(st.closed_protocol.get() == 1);
    CHECK(st.closed_local.get() == 0);
    CHECK(st.connections_open.get() == 0);
  }
}

TEST_CASE("set_idle_timeout over TCP: a silent socket is closed with reason idle; traffic keeps it open") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto record = std::make_shared<Record>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = factory<IdleEcho>(record, Duration(netloop::milliseconds(200)));
    REQUIRE(!server.start(cfg));

    // Silent from the start.
    {
      auto start = SteadyClock::now();
      Sock s = connect_to(server.address());
      REQUIRE(s.valid());
      CHECK(to_cstr(wait_end(s.get(), 5s)) == std::string("eof"));
      auto waited = SteadyClock::now() - start;
      CHECK(waited >= 150ms);  // the timeout, less the loop's cached clock's slack
      CHECK(waited < 3s);
    }
    // A byte every 60 ms for ~0.6 s (three times the timeout), then silence.
    {
      Sock s = connect_to(server.address());
      REQUIRE(s.valid());
      for (int i = 0; i < 10; ++i) {
        std::this_thread::sleep_for(60ms);
        REQUIRE_MESSAGE(echo_once(s.get(), "x") == "x", "closed while in use, round " << i);
      }
      auto last = SteadyClock::now();
      CHECK(to_cstr(wait_end(s.get(), 5s)) == std::string("eof"));
      CHECK(SteadyClock::now() - last >= 150ms);
    }
    REQUIRE(wait_until([&] { return record->closed.load() == 2; }, 5s));
    for (const auto& ci : record->close_infos()) {
      CHECK(ci.reason == CloseReason::idle);
      CHECK(ci.error == std::errc::timed_out);
    }
    CHECK(loop_stats(server).closed_idle.get() == 2);
  }
}

TEST_CASE("restart_timer over TCP: a timer that fired is re-armed; a pending one is moved") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto record = std::make_shared<Record>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = factory<Ticker>(record);
    REQUIRE(!server.start(cfg));

    Sock s = connect_to(server.address(), {.timeout = 3s});
    REQUIRE(s.valid());
    CHECK(read_line(s.get()) == "tick\n");  // the first firing, 50 ms after the open
    REQUIRE(send_all(s.get(), "again\n"));
    CHECK(read_line(s.get()) == "rearmed\n");  // it had fired: armed again (300 ms)
    REQUIRE(send_all(s.get(), "again\n"));
    CHECK(read_line(s.get()) == "pending\n");  // still pending: moved
    CHECK(read_line(s.get()) == "tick\n");
    // One-shot: nothing more comes.
    CHECK(to_cstr(wait_end(s.get(), 500ms)) == std::string("timeout"));
    s.reset();
    CHECK(wait_until([&] { return record->closed.load() == 1; }, 5s));
  }
}
