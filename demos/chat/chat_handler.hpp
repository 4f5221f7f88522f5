// ChatHandler: one chat connection. Splits its input into lines, runs the commands, and
// hands everything else to the room it shares with the other connections of its loop.
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include "chat/chat_room.hpp"
#include "netloop/protocol.hpp"

namespace netloop::demo::chat {

class ChatHandler final : public StreamHandler {
 public:
  explicit ChatHandler(std::shared_ptr<ChatRoom> room) : room_(std::move(room)) {}
  ~ChatHandler() override;
  ChatHandler(const ChatHandler&) = delete;
  ChatHandler& operator=(const ChatHandler&) = delete;

  void on_open(Connection& conn) override;
  void on_data(Connection& conn, Buffer& input) override;
  // The peer's end of stream: a last line without its LF still counts, then the default
  // (finish sending, then close).
  void on_peer_shutdown(Connection& conn, Buffer& input) override;
  // A chat connection has nothing in progress between lines: a drain says so and closes.
  void on_server_draining(Connection& conn) override;
  void on_close(Connection& conn, const CloseInfo& info) override;

 private:
  void on_line(Connection& conn, std::string_view line);
  void on_command(Connection& conn, std::string_view line);
  void too_long(Connection& conn);

  std::shared_ptr<ChatRoom> room_;  // shared ownership: the room outlives every handler
  std::optional<MemberId> id_;      // set from on_open to on_close while in the room
};

}  // namespace netloop::demo::chat
