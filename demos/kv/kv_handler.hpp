// KvHandler: one client connection of the key-value store.
//
// Pipelined commands are answered in order, their replies gathered in the loop's reply
// buffer and sent once per on_data batch (or every kFlushBytes). While output_full() it
// stops and leaves the rest of the input where it is: on_data is offered it again once
// the peer has read enough. A protocol error is answered ("-ERR Protocol error: ...")
// and closes the connection, as Redis does; so does QUIT, after its +OK.
//
// Requests are parsed in place, out of the connection's input. One that is still
// arriving past kSpillBytes moves into the handler's own buffer (as do the following
// pieces of it, until it is whole), so a command larger than the connection's
// max_input is still accepted, up to KvOptions::max_command.
#pragma once

#include <memory>

#include "kv/kv_store.hpp"
#include "kv/resp_parser.hpp"
#include "netloop/buffer.hpp"
#include "netloop/protocol.hpp"

namespace netloop::demo::kv {

class KvHandler final : public StreamHandler {
 public:
  static constexpr size_t kFlushBytes = 64 * 1024;
  static constexpr size_t kSpillBytes = 16 * 1024;

  explicit KvHandler(std::shared_ptr<KvStore> store);

  void on_data(Connection& conn, Buffer& input) override;
  void on_peer_shutdown(Connection& conn, Buffer& input) override;

 private:
  std::shared_ptr<KvStore> store_;
  RespParser parser_;
  Buffer spill_;            // the request in progress, once past kSpillBytes
  bool closing_ = false;    // close() asked for (QUIT, a protocol error, end of stream)
  bool peer_done_ = false;  // the peer ended its stream
};

}  // namespace netloop::demo::kv
