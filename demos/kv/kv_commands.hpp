// The commands: one parsed request in, one RESP reply out (Redis 7's replies and error
// texts for what is implemented).
//
//   PING [message]                 +PONG, or the message
//   ECHO message
//   SET key value [NX|XX] [GET] [EX seconds|PX milliseconds|KEEPTTL]
//                                  EXAT and PXAT are refused with an error naming them
//   GET key
//   DEL key [key ...]              keys removed
//   EXISTS key [key ...]           keys that exist (a key named twice counts twice)
//   DBSIZE
//   FLUSHALL [ASYNC|SYNC]          always synchronous
//   COMMAND [...]                  an empty array (redis-cli then uses its built-in help)
//   CONFIG GET parameter [...]     "save" "" and "appendonly" "no" (what redis-benchmark
//                                  asks for); "*" matches both; other names: nothing
//   QUIT                           +OK, then the connection closes
// Anything else: "-ERR unknown command 'X', with args beginning with: ...".
#pragma once

#include <span>
#include <string_view>

#include "kv/kv_store.hpp"
#include "kv/resp_writer.hpp"
#include "netloop/clock.hpp"

namespace netloop::demo::kv {

enum class After : uint8_t { go_on, close };

// Runs `args` (args[0] is the command name, matched case-insensitively; not empty).
After execute(KvStore& store, std::span<const std::string_view> args, TimePoint now,
              RespWriter& reply);

}  // namespace netloop::demo::kv
