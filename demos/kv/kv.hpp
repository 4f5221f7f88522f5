// A small key-value store speaking a subset of the Redis protocol (RESP2): PING, ECHO,
// SET (EX/PX/NX/XX/KEEPTTL/GET), GET, DEL, EXISTS, DBSIZE, FLUSHALL, QUIT, COMMAND and
// CONFIG GET (the last two answered enough for redis-cli and redis-benchmark). An example
// handler written only against netloop's public API.
//
// Files, one job each:
//   resp_parser   incremental RESP2 request parser (arrays of bulk strings, inline
//                 commands), zero-copy views, limits below
//   resp_writer   RESP2 replies into the loop's reply buffer (large values sent directly)
//   kv_store      the map: keys, values, expiry (lazy, plus a bounded sweep per command)
//   kv_commands   the commands: arity, options, Redis-compatible replies and errors
//   kv_handler    one connection: pipelined commands in order, one send per batch, stop
//                 while output_full(), protocol errors answered then closed
#pragma once

#include <cstddef>
#include <memory>

#include "netloop/protocol.hpp"

namespace netloop::demo::kv {

struct KvOptions {
  size_t max_bulk = 512 * 1024 * 1024 / 64;  // largest key or value accepted (8 MiB)
  size_t max_args = 1024 * 1024;             // arguments in one command
  size_t max_inline = 64 * 1024;             // longest inline command line
  // Largest whole command, framing included. A command still arriving past
  // kSpillBytes (kv_handler.cpp) is moved out of the connection's input into the
  // handler's own buffer, so commands larger than the connection's max_input work; this
  // bounds that buffer.
  size_t max_command = 16 * 1024 * 1024;
};

// The store: shared by the connections of one event loop (not thread-safe by design).
class KvStore;

std::shared_ptr<KvStore> make_kv_store(const KvOptions& options = {});
StreamHandlerFactory kv_factory(std::shared_ptr<KvStore> store);
// Keys held, counting keys whose time to live ran out but were not reclaimed yet.
size_t key_count(const KvStore& store) noexcept;

}  // namespace netloop::demo::kv
