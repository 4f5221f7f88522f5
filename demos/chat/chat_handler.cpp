// The chat connection handler: line splitting with a length limit, and the commands.
#include "chat/chat_handler.hpp"

#include <string>
#include <utility>

namespace netloop::demo::chat {

namespace {

// Control characters (ESC above all) would let one member drive the others' terminals:
// clear screens, rewrite earlier lines, fake messages from someone else.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) c = '?';
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

ChatHandler::~ChatHandler() {
  // Connections call on_close before dropping their handler; this covers a transport that
  // would not, so the room never keeps a pointer to a connection that is gone. Silent: we
  // do not know why it went, and may be in the middle of a teardown.
  if (id_) room_->leave(*id_, false);
}

void ChatHandler::on_open(Connection& conn) {
  id_ = room_->join(conn);
  if (!id_) {
    conn.send("* room is full\n");
    conn.close();
  }
}

void ChatHandler::on_close(Connection&, const CloseInfo& info) {
  // Whatever the reason (a /quit, the peer's end of stream or reset, an abort for being
  // too slow, an error), the connection is gone after this call: leave now. A server
  // shutting down closes everyone; announcing each departure to all the others would be
  // N² sends to connections about to close.
  if (id_) room_->leave(*std::exchange(id_, std::nullopt), info.reason != CloseReason::shutdown);
}

void ChatHandler::on_server_draining(Connection& conn) {
  if (id_) {
    room_->tell(*id_, "* server shutting down\n");
    // Leave now, silently: every member is being told the same, and announcing each
    // departure to all the others would be N² sends to connections about to close.
    room_->leave(*std::exchange(id_, std::nullopt), false);
  }
  conn.close();  // writes what is buffered first
}

void ChatHandler::on_data(Connection& conn, Buffer& input) {
  if (!id_) {  // not in the room (it was full): closing, nothing to read
    input.consume(input.size());
    return;
  }
  const size_t max_line = room_->options().max_line;
  // Stop at a close (/quit) and when our own output is backed up (the peer reads
  // slowly, /who after /who): the rest stays in `input`, offered again once it drains.
  while (conn.is_open() && !conn.output_full()) {
    std::string_view pending = input.view();
    size_t lf = pending.find('\n');
    if (lf == std::string_view::npos) {
      // No end yet. Past max_line, plus one byte for a CR that may precede the LF, the
      // line can only be too long: refuse it now instead of buffering up to max_input.
      if (pending.size() > max_line + 1) too_long(conn);
      return;
    }
    std::string_view line = pending.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > max_line) return too_long(conn);
    on_line(conn, line);  // `line` points into `input`: consume only afterwards
    input.consume(lf + 1);
  }
}

void ChatHandler::on_peer_shutdown(Connection& conn, Buffer& input) {
  // on_data has taken every complete line it could; what is left is one unterminated
  // line (or lines held back behind a full output, which end with the connection).
  std::string_view last = input.view();
  if (id_ && conn.is_open() && !last.empty() && last.find('\n') == std::string_view::npos) {
    if (last.back() == '\r') last.remove_suffix(1);
    if (last.size() > room_->options().max_line) return too_long(conn);
    on_line(conn, last);
    input.consume(input.size());
  }
  conn.close();
}

void ChatHandler::too_long(Connection& conn) {
  conn.send("* line too long\n");
  conn.close();
}

void ChatHandler::on_line(Connection& conn, std::string_view line) {
  if (line.empty()) return;
  if (line.front() == '/' && !line.starts_with("//")) return on_command(conn, line);
  if (line.starts_with("//")) line.remove_prefix(1);  // "//x" says "/x"
  room_->say(*id_, printable(line));
}

void ChatHandler::on_command(Connection& conn, std::string_view line) {
  size_t space = line.find_first_of(" \t");
  std::string_view cmd = line.substr(0, space);
  std::string_view arg = space == std::string_view::npos ? "" : trim(line.substr(space));
  if (cmd == "/nick") {
    if (arg.empty()) return room_->tell(*id_, "* usage: /nick NAME\n");
    switch (room_->rename(*id_, arg)) {
      case ChatRoom::Rename::ok: break;
      case ChatRoom::Rename::taken: room_->tell(*id_, "* name taken\n"); break;
      case ChatRoom::Rename::invalid:
        room_->tell(*id_, "* invalid name: 1 to 32 characters of A-Z a-z 0-9 _ -\n");
        break;
    }
  } else if (cmd == "/who") {
    room_->who(*id_);
  } else if (cmd == "/quit") {
    room_->tell(*id_, "* bye\n");
    conn.close();  // we leave the room in on_close, once the bye is flushed
  } else {
    room_->tell(*id_, "* unknown command; try /nick NAME, /who, /quit (// starts a line with /)\n");
  }
}

}  // namespace netloop::demo::chat
