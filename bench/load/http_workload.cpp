// HttpWorkload: the request (built once, copies back to back) and each connection's
// response parsing.
#include "http_workload.hpp"

#include "http_response_parser.hpp"

namespace netloop::load {

class HttpSession final : public Session {
 public:
  HttpSession(StreamLoad& load, size_t slot, HttpWorkload& workload)
      : Session(load, slot), w_(workload) {}

 private:
  std::string_view request(uint64_t seq) const noexcept override { return w_.train_.at(seq); }

  void consume(const char* data, size_t n, uint64_t now) override {
    while (n > 0) {
      const auto r = parser_.parse(data, n);
      if (r.status == HttpResponseParser::Status::need_more) return;
      if (r.status == HttpResponseParser::Status::error) {
        fail(std::string("malformed response: ") + parser_.error());
        return;
      }
      data += r.consumed;
      n -= r.consumed;
      if (!answered(now)) return;
      if (!parser_.keep_alive()) {
        // "Connection: close" (or HTTP/1.0): whatever follows is not an answer.
        expect_close();
        return;
      }
    }
  }

  bool peer_ended(uint64_t now) override {
    switch (parser_.finish()) {
      case HttpResponseParser::Status::done:  // a body delimited by the close
        if (answered(now)) expect_close();
        return !failed();
      case HttpResponseParser::Status::error:
        fail(std::string("the server closed the connection in the middle of a response"));
        return false;
      case HttpResponseParser::Status::need_more:
        break;
    }
    return true;
  }

  bool answered(uint64_t now) {
    if (!complete(now)) return false;
    if (load_.measuring()) ++w_.statuses_[size_t(parser_.status_code())];
    return true;
  }

  HttpWorkload& w_;
  HttpResponseParser parser_;
};

namespace {

// What wrk sends: the request line and Host, nothing else (--close: and Connection: close).
std::string get_request(const LoadOptions& options) {
  return "GET " + options.path + " HTTP/1.1\r\nHost: " + options.host_header + "\r\n" +
         (options.close ? "Connection: close\r\n" : "") + "\r\n";
}

}  // namespace

HttpWorkload::HttpWorkload(const LoadOptions& options)
    : train_(get_request(options), options.pipeline, Session::kMaxWrite) {}

std::unique_ptr<Session> HttpWorkload::make_session(StreamLoad& load, size_t slot) {
  return std::make_unique<HttpSession>(load, slot, *this);
}

}  // namespace netloop::load
