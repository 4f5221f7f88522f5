// KvHandler: framing, pipelining and backpressure for one connection.
#include "kv/kv_handler.hpp"

#include "kv/kv_commands.hpp"
#include "kv/resp_writer.hpp"

namespace netloop::demo::kv {

KvHandler::KvHandler(std::shared_ptr<KvStore> store)
    : store_(std::move(store)), parser_(store_->options()) {}

void KvHandler::on_data(Connection& conn, Buffer& input) {
  // (Not called again once close() was asked for: closing_ needs no check here.)
  Buffer& out = store_->reply_buffer();
  out.clear();
  RespWriter reply(out, conn);
  TimePoint now = conn.now();

  while (!input.empty() && !closing_) {
    if (conn.output_full()) break;  // offered again once the peer has caught up
    // The request starts at the front of `input`, or in spill_ (and goes on in `input`).
    bool spilled = !spill_.empty();
    if (spilled) spill_.append(input.view());
    std::string_view request = spilled ? spill_.view() : input.view();
    RespResult r = parser_.parse(request);
    if (r.status == RespStatus::need_more) {
      if (spilled) {
        input.consume(input.size());
      } else if (input.size() >= kSpillBytes) {
        spill_.append(input.view());
        input.consume(input.size());
      }
      break;
    }
    if (r.status == RespStatus::error) {
      reply.error_begin();
      reply.error_piece("ERR Protocol error: ");
      reply.error_piece(r.error);
      reply.error_end();
      closing_ = true;
      input.clear();
      spill_.clear();
      spill_.release();
      break;
    }
    // The bytes of this request that are still in `input` (all of it when not spilled).
    size_t from_input = spilled ? r.consumed - (spill_.size() - input.size()) : r.consumed;
    if (!parser_.args().empty() &&
        execute(*store_, parser_.args(), now, reply) == After::close) {
      closing_ = true;
      input.clear();
    } else {
      input.consume(from_input);
    }
    // The args were views into the request: only now may its bytes go.
    if (spilled) {
      spill_.clear();
      spill_.release();
    }
    if (reply.buffered() >= kFlushBytes) reply.flush();
  }
  reply.flush();

  if (closing_ || (peer_done_ && !conn.output_full())) {
    closing_ = true;
    conn.close();
  }
}

void KvHandler::on_peer_shutdown(Connection& conn, Buffer&) {
  peer_done_ = true;
  // Commands still waiting behind a full output are answered first (on_data is offered
  // them again once it drains); a partial command at the end of the stream is dropped.
  if (!conn.output_full()) {
    closing_ = true;
    conn.close();
  }
}

StreamHandlerFactory kv_factory(std::shared_ptr<KvStore> store) {
  return [store = std::move(store)] { return std::make_unique<KvHandler>(store); };
}

}  // namespace netloop::demo::kv
