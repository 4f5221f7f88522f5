// ListenerOptions::defer_accept on loopback (Linux: TCP_DEFER_ACCEPT): a client that
// connects and says nothing is not accepted until it speaks or the deferral runs out, while
// one that speaks is accepted and served at once; without the option the silent one is
// accepted at its handshake. A socket served through from_descriptor() takes the new
// options' deferral, whatever the instance that handed it over had set.
#include "support.hpp"

#include <netinet/tcp.h>

using namespace nltest;
using namespace netloop;

namespace {

#ifdef TCP_DEFER_ACCEPT
constexpr bool kKernelDefers = true;
#else
constexpr bool kKernelDefers = false;
#endif

struct EchoServer {
  ServerThread thread;
  explicit EchoServer(Duration defer) {
    ServerThread::Config cfg;
    cfg.options.defer_accept = defer;
    auto ec = thread.start(cfg);
    REQUIRE_MESSAGE(!ec, ec.message());
  }
  const Address& address() const { return thread.address(); }
  uint64_t accepted() { return thread.stats().accepted.get(); }
};

}  // namespace

TEST_CASE("defer_accept: a silent client is accepted once it speaks, a speaking one at once" *
          doctest::skip(!kKernelDefers)) {
  EchoServer server(seconds(30));  // long past the test: nothing waits for it to run out
  Sock silent = connect_to(server.address(), {.timeout = 5s});
  REQUIRE(silent.valid());  // the handshake is done: the client cannot tell

  Sock talker = connect_to(server.address(), {.timeout = 5s});
  REQUIRE(talker.valid());
  REQUIRE(send_all(talker.get(), "first"));
  CHECK(recv_exact(talker.get(), 5) == "first");
  CHECK(server.accepted() == 1);

  std::this_thread::sleep_for(300ms);
  CHECK(server.accepted() == 1);  // the silent one still waits in the kernel
  CHECK(server.thread.connection_count() == 1);

  REQUIRE(send_all(silent.get(), "late"));
  CHECK(recv_exact(silent.get(), 4) == "late");
  CHECK(server.accepted() == 2);
}

TEST_CASE("defer_accept: the deferral runs out and the silent client is accepted" *
          doctest::skip(!kKernelDefers)) {
  // One second: the kernel retransmits its SYN-ACK once, and the client's answer to it is
  // accepted even without data.
  EchoServer server(seconds(1));
  Sock silent = connect_to(server.address(), {.timeout = 5s});
  REQUIRE(silent.valid());
  std::this_thread::sleep_for(300ms);
  CHECK(server.accepted() == 0);
  REQUIRE(wait_until([&] { return server.accepted() == 1; }, 8s));
  REQUIRE(send_all(silent.get(), "still here"));
  CHECK(recv_exact(silent.get(), 10) == "still here");
}

TEST_CASE("defer_accept off: a silent client is accepted at its handshake") {
  EchoServer server(Duration::zero());
  Sock silent = connect_to(server.address(), {.timeout = 5s});
  REQUIRE(silent.valid());
  REQUIRE(wait_until([&] { return server.accepted() == 1; }, 5s));
}

TEST_CASE("defer_accept: a socket served through from_descriptor takes the new deferral" *
          doctest::skip(!kKernelDefers)) {
  auto loop = EventLoop::create("");
  REQUIRE(loop);

  // A listening socket as the instance handing it over left it: deferring, or not.
  auto listening = [](int secs) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    Address a = Address::ipv4_loopback(0);
    REQUIRE(::bind(fd.get(), a.sockaddr_ptr(), a.length()) == 0);
    REQUIRE(::listen(fd.get(), 16) == 0);
#ifdef TCP_DEFER_ACCEPT
    REQUIRE(::setsockopt(fd.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof secs) == 0);
#endif
    REQUIRE((accept_deferral_seconds(fd.get()) > 0) == (secs > 0));
    return fd;
  };
  // The deferral of the socket once served with `defer`.
  auto served_with = [&](Fd fd, Duration defer) {
    ListenerOptions o;
    o.defer_accept = defer;
    auto served = TcpListener::from_descriptor(**loop, std::move(fd), echo::tcp_echo_factory(), o);
    REQUIRE(served);
    return accept_deferral_seconds((*served)->descriptor());
  };
  CHECK(served_with(listening(5), Duration::zero()) == 0);  // the old deferral is turned off
  CHECK(served_with(listening(0), seconds(2)) >= 2);        // and a new one set
}
