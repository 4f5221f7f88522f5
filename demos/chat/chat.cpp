// The chat example's entry points: make a room, make handlers that share it.
#include "chat/chat.hpp"

#include "chat/chat_handler.hpp"
#include "chat/chat_room.hpp"

namespace netloop::demo::chat {

std::shared_ptr<ChatRoom> make_chat_room(const ChatOptions& options) {
  return std::make_shared<ChatRoom>(options);
}

// The factory captures the room by shared_ptr, and each handler it makes keeps a copy.
// That is safe because everything that touches the room runs on one loop's thread: the
// listeners built with this factory accept there, their connections call their handlers
// there, one callback at a time, so the room is never used by two threads, nor by two
// handlers at once (ChatRoom asserts the thread in debug builds). The shared_ptr is about
// lifetime, not threads: the listeners, the factory copies and the handlers can go in
// any order, and the last one frees the room. Used with several loops this factory would
// share one room between threads: see chat_room.hpp for what to do instead.
StreamHandlerFactory chat_factory(std::shared_ptr<ChatRoom> room) {
  if (!room) room = make_chat_room();
  return [room = std::move(room)] { return std::make_unique<ChatHandler>(room); };
}

size_t member_count(const ChatRoom& room) noexcept { return room.size(); }

}  // namespace netloop::demo::chat
