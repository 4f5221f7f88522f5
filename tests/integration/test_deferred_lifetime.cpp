// Lifetime of work a connection queues on its loop (loop.defer): input re-delivery after
// resume_reading() must never run on a connection that is gone. These run the loop on the
// test thread (run_once), so the order of events is exact. A use-after-free here is
// silent in a release build; a build with -Db_sanitize=address,undefined reports it.
#include "support.hpp"

using namespace nltest;
using netloop::CloseReason;

namespace {

// Leaves its first input unconsumed and pauses reading; echoes everything afterwards.
struct StingyJournal {
  int data_calls = 0;
  int data_calls_after_close = 0;
  int closes = 0;
  int alive = 0;
  std::vector<CloseReason> reasons;
};

class StingyHandler final : public netloop::StreamHandler {
 public:
  // With `close_on_redelivery`, the second on_data (the re-delivery) pauses and resumes
  // reading (queuing another re-delivery) and then closes.
  StingyHandler(StingyJournal& j, bool close_on_redelivery = false)
      : j_(j), close_on_redelivery_(close_on_redelivery) {
    ++j_.alive;
  }
  ~StingyHandler() override { --j_.alive; }
  void on_data(netloop::Connection& c, netloop::Buffer& in) override {
    ++j_.data_calls;
    if (closed_) ++j_.data_calls_after_close;
    if (j_.data_calls == 1) {
      c.pause_reading();  // keep the bytes for later
      return;
    }
    if (close_on_redelivery_) {
      c.pause_reading();
      c.resume_reading();
      c.close();
      return;
    }
    c.send(in.data(), in.size());
    in.consume(in.size());
  }
  void on_close(netloop::Connection&, const netloop::CloseInfo& info) override {
    closed_ = true;
    ++j_.closes;
    j_.reasons.push_back(info.reason);
  }

 private:
  StingyJournal& j_;
  bool close_on_redelivery_;
  bool closed_ = false;
};

}  // namespace

// The close completes at once (no lingering read after it): these tests count the
// iterations between a close and its completion.
netloop::ListenerOptions no_linger() {
  netloop::ListenerOptions o;
  o.connection.linger_timeout = netloop::Duration::zero();
  return o;
}

// resume_reading() with input left over queues a deferred re-delivery on the loop; the
// listener going away before that runs must not leave it pointing at a freed connection.
// The loop runs on the test thread (run_once) so the order of events is exact.
TEST_CASE("destroying the listener while a connection's input re-delivery is queued") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    std::string why;
    auto loop_r = netloop::EventLoop::create(backend, &why);
    REQUIRE_MESSAGE(loop_r.ok(), why);
    auto& loop = **loop_r;
    StingyJournal j;
    auto l_r = netloop::TcpListener::listen(
        loop, netloop::Address::ipv4_loopback(0),
        [&j] { return std::make_unique<StingyHandler>(j); });
    REQUIRE(l_r.ok());
    std::unique_ptr<netloop::TcpListener> listener = std::move(*l_r);

    Sock s = connect_to(listener->local_address(), {.timeout = 3s});
    REQUIRE(s.valid());
    REQUIRE(send_all(s.get(), "kept for later"));
    auto t0 = SteadyClock::now();
    while (j.data_calls == 0 && SteadyClock::now() - t0 < 5s) loop.run_once(20);
    REQUIRE(j.data_calls == 1);
    REQUIRE(listener->connection_count() == 1);

    // Resume (queues the re-delivery), then drop the listener before the loop turns.
    listener->for_each_connection([](netloop::TcpConnection& c) { c.resume_reading(); });
    listener.reset();
    CHECK(j.closes == 1);
    REQUIRE(j.reasons.size() == 1);
    CHECK(j.reasons[0] == CloseReason::shutdown);

    // The queued re-delivery runs now: it must find nothing to do. The connection (and
    // its handler) is disposed of by the loop once no deferred work can reach it.
    for (int i = 0; i < 3; ++i) loop.run_once(0);
    CHECK(j.alive == 0);
    CHECK(j.data_calls == 1);
    CHECK(j.data_calls_after_close == 0);
    CHECK(to_cstr(wait_end(s.get(), 3s)) == std::string("eof"));
  }
}

// The same hazard from inside the handler: during a re-delivery it queues another one and
// closes; the closed connection is disposed of at the end of that iteration, while the
// newly queued re-delivery only runs in the next one.
TEST_CASE("a handler that queues another re-delivery and closes during a re-delivery") {
  for (const auto& backend : usable_backends()) {
    CAPTURE(backend);
    std::string why;
    auto loop_r = netloop::EventLoop::create(backend, &why);
    REQUIRE_MESSAGE(loop_r.ok(), why);
    auto& loop = **loop_r;
    StingyJournal j;
    auto l_r = netloop::TcpListener::listen(
        loop, netloop::Address::ipv4_loopback(0),
        [&j] { return std::make_unique<StingyHandler>(j, /*close_on_redelivery=*/true); },
        no_linger());
    REQUIRE(l_r.ok());
    auto& listener = **l_r;

    Sock s = connect_to(listener.local_address(), {.timeout = 3s});
    REQUIRE(s.valid());
    REQUIRE(send_all(s.get(), "abc"));
    auto t0 = SteadyClock::now();
    while (j.data_calls == 0 && SteadyClock::now() - t0 < 5s) loop.run_once(20);
    REQUIRE(j.data_calls == 1);

    listener.for_each_connection([](netloop::TcpConnection& c) { c.resume_reading(); });
    for (int i = 0; i < 4; ++i) loop.run_once(0);
    CHECK(j.data_calls == 2);
    CHECK(j.data_calls_after_close == 0);
    CHECK(j.closes == 1);
    CHECK(j.alive == 0);
    REQUIRE(j.reasons.size() == 1);
    CHECK(j.reasons[0] == CloseReason::local);
    CHECK(listener.connection_count() == 0);
    CHECK(to_cstr(wait_end(s.get(), 3s)) == std::string("eof"));
  }
}
