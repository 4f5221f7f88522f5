// RespWorkload: the command (encoded once as redis-cli would, copies back to back) and
// each connection's reply parsing.
#include "resp_workload.hpp"

namespace netloop::load {
namespace {

// One bulk string, appended to `out`.
void bulk(std::string& out, std::string_view s) {
  out += '$';
  out += std::to_string(s.size());
  out += "\r\n";
  out += s;
  out += "\r\n";
}

}  // namespace

class RespSession final : public Session {
 public:
  RespSession(StreamLoad& load, size_t slot, RespWorkload& workload)
      : Session(load, slot), w_(workload) {}

 private:
  bool prepare(Connection& conn) override {
    if (w_.prime_.empty()) return true;
    conn.send(w_.prime_);
    priming_ = true;
    return false;
  }

  std::string_view request(uint64_t seq) const noexcept override { return w_.train_.at(seq); }

  void consume(const char* data, size_t n, uint64_t now) override {
    using Status = RespReplyParser::Status;
    using Type = RespReplyParser::Type;
    while (n > 0 && active()) {
      const auto r = parser_.parse(data, n);
      if (r.status == Status::need_more) return;
      if (r.status == Status::error) {
        fail(std::string("malformed reply: ") + parser_.error());
        return;
      }
      data += r.consumed;
      n -= r.consumed;
      const Type type = parser_.type();
      if (priming_) {
        priming_ = false;
        if (type == Type::error) {
          fail("the SET before the GETs was refused: " + std::string(parser_.error_text()));
          return;
        }
        ready();
        continue;
      }
      if (!complete(now)) return;
      if (load_.measuring()) ++w_.replies_[size_t(type)];
      if (type == Type::error && !w_.error_shown_) {
        w_.error_shown_ = true;
        load_.report_error(slot(), "error reply: " + std::string(parser_.error_text()));
      }
    }
  }

  bool peer_ended(uint64_t) override {
    if (!parser_.in_progress()) return true;
    fail(std::string("the server closed the connection in the middle of a reply"));
    return false;
  }

  RespWorkload& w_;
  RespReplyParser parser_;
  bool priming_ = false;  // the SET of prepare() is not answered yet
};

namespace {

// As redis-cli encodes commands: an array of bulk strings. A SET's value is `size` 'x'
// bytes, as redis-benchmark's -d.
std::string encode(RespCommand command, const LoadOptions& options) {
  std::string out;
  switch (command) {
    case RespCommand::ping:
      out = "*1\r\n";
      bulk(out, "PING");
      break;
    case RespCommand::set:
      out = "*3\r\n";
      bulk(out, "SET");
      bulk(out, options.key);
      bulk(out, std::string(options.size, 'x'));
      break;
    case RespCommand::get:
      out = "*2\r\n";
      bulk(out, "GET");
      bulk(out, options.key);
      break;
  }
  return out;
}

}  // namespace

RespWorkload::RespWorkload(const LoadOptions& options)
    : train_(encode(options.command, options), options.pipeline, Session::kMaxWrite),
      prime_(options.command == RespCommand::get ? encode(RespCommand::set, options) : "") {}

std::unique_ptr<Session> RespWorkload::make_session(StreamLoad& load, size_t slot) {
  return std::make_unique<RespSession>(load, slot, *this);
}

}  // namespace netloop::load
