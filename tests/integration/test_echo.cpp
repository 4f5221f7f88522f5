// Echo over real loopback sockets: many concurrent clients, half-close, IPv6.
#include "support.hpp"

#include <arpa/inet.h>

using namespace nltest;
using netloop::Address;
using netloop::CloseReason;

namespace {

// 200 nonblocking clients driven by one poll() loop: each sends ~64 KiB of random bytes
// in random-sized chunks and checks every byte that comes back.
void many_clients(const std::string& backend) {
  constexpr size_t kClients = 200;
  ServerThread server;
  ServerThread::Config cfg;
  cfg.backend = backend;
  REQUIRE_MESSAGE(!server.start(cfg), "cannot start the server");
  CAPTURE(server.backend());

  struct Client {
    Sock s;
    std::string data;
    size_t sent = 0;
    size_t received = 0;
    bool done = false;
  };
  std::vector<Client> clients(kClients);
  std::mt19937_64 rng(0x5eed0000 + kClients);
  for (size_t i = 0; i < kClients; ++i) {
    clients[i].s = connect_to(server.address());
    REQUIRE_MESSAGE(clients[i].s.valid(), "connect #" << i << ": " << std::strerror(errno));
    clients[i].data = random_bytes(64 * KiB + rng() % (4 * KiB), 1000 + i);
    set_nonblocking(clients[i].s.get());
  }
  // All of them are connected at once before any byte moves.
  CHECK(wait_until([&] { return server.connection_count() == kClients; }, 10s));

  size_t mismatches = 0, early_eofs = 0, errors = 0, extra = 0, done = 0;
  std::vector<char> buf(64 * KiB);
  std::vector<pollfd> pfds;
  std::vector<size_t> index;
  auto started = SteadyClock::now();
  auto deadline = started + 25s;
  while (done < kClients && SteadyClock::now() < deadline) {
    pfds.clear();
    index.clear();
    for (size_t i = 0; i < kClients; ++i) {
      auto& c = clients[i];
      if (c.done) continue;
      short ev = POLLIN;
      if (c.sent < c.data.size()) ev |= POLLOUT;
      pfds.push_back({c.s.get(), ev, 0});
      index.push_back(i);
    }
    int r = ::poll(pfds.data(), nfds_t(pfds.size()), 500);
    if (r < 0 && errno == EINTR) continue;
    REQUIRE(r >= 0);
    for (size_t k = 0; k < pfds.size(); ++k) {
      auto& c = clients[index[k]];
      short re = pfds[k].revents;
      if ((re & POLLOUT) && c.sent < c.data.size()) {
        size_t chunk = std::min<size_t>(c.data.size() - c.sent, 1 + rng() % (12 * KiB));
        ssize_t n = ::send(c.s.get(), c.data.data() + c.sent, chunk, MSG_NOSIGNAL);
        if (n > 0) c.sent += size_t(n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          ++errors;
          c.done = true;
          ++done;
          continue;
        }
      }
      if (re & (POLLIN | POLLHUP | POLLERR)) {
        size_t want = 1 + rng() % buf.size();
        ssize_t n = ::recv(c.s.get(), buf.data(), want, 0);
        bool finished = false;
        if (n > 0) {
          if (c.received + size_t(n) > c.data.size()) {
            ++extra;
            finished = true;
          } else if (std::memcmp(buf.data(), c.data.data() + c.received, size_t(n)) != 0) {
            ++mismatches;
            finished = true;
          } else {
            c.received += size_t(n);
            finished = c.received == c.data.size();
          }
        } else if (n == 0) {
          ++early_eofs;
          finished = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          ++errors;
          finished = true;
        }
        if (finished) {
          c.done = true;
          ++done;
        }
      }
    }
  }
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started);
  MESSAGE("backend " << server.backend() << ": " << kClients << " clients echoed in "
                     << elapsed.count() << " ms");

  size_t complete = 0;
  for (auto& c : clients) complete += c.received == c.data.size() ? 1 : 0;
  CHECK(mismatches == 0);
  CHECK(early_eofs == 0);
  CHECK(errors == 0);
  CHECK(extra == 0);
  CHECK(complete == kClients);

  // Nothing more arrives once each client has its bytes back.
  for (auto& c : clients) set_nonblocking(c.s.get(), false);
  char probe;
  size_t stray = 0;
  for (auto& c : clients)
    if (::recv(c.s.get(), &probe, 1, MSG_DONTWAIT) > 0) ++stray;
  CHECK(stray == 0);

  for (auto& c : clients) c.s.reset();
  CHECK(wait_until([&] { return server.connection_count() == 0; }, 10s));
  auto st = server.stats();
  CHECK(st.accepted == kClients);
  CHECK(st.accept_errors == 0);
  CHECK(st.dropped_no_fds == 0);
}

bool ipv6_loopback_configured(std::string& why) {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::string("socket(AF_INET6): ") + std::strerror(errno);
    return false;
  }
  Address a = Address::ipv6_loopback(0);
  bool ok = ::bind(fd, a.sockaddr_ptr(), a.length()) == 0;
  if (!ok) why = std::string("bind [::1]:0: ") + std::strerror(errno);
  ::close(fd);
  return ok;
}

}  // namespace

TEST_CASE("200 concurrent clients each get ~64 KiB echoed intact") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    many_clients(backend);
  }
}

TEST_CASE("half-close: the client's SHUT_WR still gets every echo, then EOF") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    auto journal = std::make_shared<Journal>();
    ServerThread server;
    ServerThread::Config cfg;
    cfg.backend = backend;
    cfg.factory = journal_factory(journal);
    REQUIRE(!server.start(cfg));

    // Small, then large enough that the server's output is pushed back and it is
    // still writing when it learns of the end of stream.
    for (size_t size : {size_t(5), 300 * KiB, 3 * MiB}) {
      CAPTURE(size);
      Sock s = connect_to(server.address());
      REQUIRE(s.valid());
      std::string data = random_bytes(size, 77 + size);
      Exchange ex = exchange(s.get(), data, /*half_close=*/true, data.size(),
                             /*until_eof=*/true, /*seed=*/size);
      CHECK(ex.error == 0);
      CHECK_FALSE(ex.timed_out);
      CHECK(ex.sent == data.size());
      CHECK(ex.received.size() == data.size());
      CHECK(diff_bytes(ex.received, data) == "");
      CHECK(ex.eof);
    }
    // A client that half-closes at once, having sent nothing.
    {
      Sock s = connect_to(server.address());
      REQUIRE(s.valid());
      ::shutdown(s.get(), SHUT_WR);
      CHECK(to_cstr(wait_end(s.get())) == std::string("eof"));
    }
    CHECK(wait_until([&] { return journal->closed.load() == 4; }, 5s));
    CHECK(wait_until([&] { return journal->live() == 0; }, 5s));
    for (const auto& ci : journal->close_infos()) {
      CHECK(to_string(ci.reason) == "peer");
      CHECK(!ci.error);
    }
    CHECK(journal->open_in_on_close.load() == 0);
    CHECK(server.connection_count() == 0);
  }
}

TEST_CASE("IPv6: a listener on [::1]:0 echoes and reports ::1 as the peer") {
  std::string why;
  if (!ipv6_loopback_configured(why)) {
    MESSAGE("skipped: ::1 is not configured here (" << why << ")");
    return;
  }
  auto journal = std::make_shared<Journal>();
  ServerThread server;
  ServerThread::Config cfg;
  cfg.address = Address::ipv6_loopback(0);
  cfg.factory = journal_factory(journal);
  auto ec = server.start(cfg);
  if (ec == std::errc::address_not_available) {
    MESSAGE("skipped: cannot bind [::1]: " << ec.message());
    return;
  }
  REQUIRE_MESSAGE(!ec, ec.message());
  CHECK(server.address().is_ipv6());
  CHECK(server.address().host() == "::1");
  CHECK(server.address().port() != 0);
  CHECK(server.address().to_string() == "[::1]:" + std::to_string(server.address().port()));

  Sock s = connect_to(server.address());
  REQUIRE_MESSAGE(s.valid(), std::strerror(errno));
  std::string data = random_bytes(200 * KiB, 6);
  Exchange ex = exchange(s.get(), data, false, data.size(), false, 6);
  CHECK(ex.error == 0);
  CHECK(diff_bytes(ex.received, data) == "");

  // The peer as the server sees it is our own socket's address.
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  REQUIRE(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0);
  Address mine = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  auto conns = server.connections();
  REQUIRE(conns.size() == 1);
  CHECK(conns[0].peer.is_ipv6());
  CHECK(conns[0].peer.host() == "::1");
  CHECK(conns[0].peer.port() == mine.port());
  CHECK(conns[0].peer == mine);
  CHECK(conns[0].local == server.address());
  auto peers = journal->peer_addresses();
  REQUIRE(peers.size() == 1);
  CHECK(peers[0].host() == "::1");

  s.reset();
  CHECK(wait_until([&] { return server.connection_count() == 0; }, 5s));
}
