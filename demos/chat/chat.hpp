// A line-based chat room: every line a connection sends goes to every other connection
// in the room. An example handler written only against netloop's public API.
//
// Protocol (one line per message, LF or CRLF; see docs/writing-a-handler.md for the style):
//   on connect the server greets with "* welcome, you are guest-N\n"
//   "/nick NAME\n"   renames you (announced to the room): "* you are now NAME\n" to you,
//                    "* OLD is now NAME\n" to the others; NAME is 1-32 characters of
//                    [A-Za-z0-9_-], unique in the room ignoring case, else "* name taken\n"
//                    or "* invalid name: ...\n"
//   "/who\n"         lists who is here (to you only): "* 3 here: alice, bob, guest-3\n"
//   "/quit\n"        says goodbye ("* bye\n") and closes
//   any other line   is broadcast to the others as "NAME: line\n" (not echoed to you;
//                    control characters but tab become '?'; empty lines are ignored;
//                    "//x" says "/x"; another "/word" is "* unknown command; ...\n")
//   joins and leaves are announced to the others as "* NAME joined\n" / "* NAME left\n"
//   (a leave is announced whatever the reason: /quit, end of stream, reset, abort; not
//   when the server shuts down: a graceful drain tells each member
//   "* server shutting down\n" and closes it)
// Limits: a line longer than max_line gets "* line too long\n" and the connection is
// closed; past max_members a newcomer gets "* room is full\n" and is closed; a member
// whose unsent output passes max_backlog is disconnected (reset, with a warning logged).
//
// Where things are: chat_room.hpp (the shared state, and why sharing it is safe),
// chat_handler.hpp (one connection: lines and commands), chat.cpp (these entry points).
#pragma once

#include <cstddef>
#include <memory>

#include "netloop/protocol.hpp"

namespace netloop::demo::chat {

struct ChatOptions {
  size_t max_line = 4096;               // longer lines: an error line, then close
  size_t max_members = 10'000;          // more: "* room is full" and close
  // A member whose unsent backlog passes this is disconnected rather than letting one
  // slow reader make the server buffer without bound for the whole room. Keep it above
  // the connections' high-water mark (256 KiB by default), where reading from that member
  // is paused already, so that a member only briefly behind is not dropped.
  size_t max_backlog = 1024 * 1024;
};

// The room: shared by the connections of one event loop (it is not thread-safe, and needs
// not be: a loop runs its handlers one at a time on one thread).
class ChatRoom;

std::shared_ptr<ChatRoom> make_chat_room(const ChatOptions& options = {});
// One handler per connection, all in `room`.
StreamHandlerFactory chat_factory(std::shared_ptr<ChatRoom> room);
// How many are in the room now.
size_t member_count(const ChatRoom& room) noexcept;

}  // namespace netloop::demo::chat
