// The chat room: membership, unique nicknames, and every message out through deliver().
#include "chat/chat_room.hpp"

#include <cassert>
#include <utility>

#include <fmt/format.h>

#include "netloop/log.hpp"

namespace netloop::demo::chat {

bool valid_nick(std::string_view name) noexcept {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

struct ChatRoom::Busy {
  explicit Busy(ChatRoom& r) : r(r) { ++r.busy_; }
  ~Busy() {
    if (--r.busy_ == 0) r.settle();
  }
  Busy(const Busy&) = delete;
  Busy& operator=(const Busy&) = delete;
  ChatRoom& r;
};

void ChatRoom::check_thread() {
  if (!thread_) thread_ = std::this_thread::get_id();
  assert(*thread_ == std::this_thread::get_id() && "a ChatRoom belongs to one loop's thread");
}

// Names differ by more than case, so "Alice" cannot pass for "alice".
std::string ChatRoom::fold(std::string_view name) {
  std::string key(name);
  for (char& c : key)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return key;
}

ChatRoom::Member* ChatRoom::find(MemberId id) {
  auto it = members_.find(id);
  return it == members_.end() || !it->second.conn ? nullptr : &it->second;
}

const ChatRoom::Member* ChatRoom::find(MemberId id) const {
  auto it = members_.find(id);
  return it == members_.end() || !it->second.conn ? nullptr : &it->second;
}

std::string_view ChatRoom::nick(MemberId id) const {
  const Member* m = find(id);
  return m ? std::string_view(m->nick) : std::string_view();
}

// Called from the new connection's on_open: should the greeting already put it past the
// backlog limit, its abort completes after on_open, like any close asked for inside one
// of its own callbacks.
std::optional<MemberId> ChatRoom::join(Connection& conn) {
  check_thread();
  if (count_ >= options_.max_members) return std::nullopt;
  std::string name;
  do {
    name = fmt::format("guest-{}", next_guest_++);
  } while (by_name_.contains(fold(name)));  // someone may have taken it with /nick
  MemberId id = next_id_++;
  members_.emplace(id, Member{&conn, name});
  by_name_.emplace(fold(name), id);
  ++count_;
  log_debug("chat: {} joined from {}", name, conn.peer_address());
  Busy busy(*this);
  tell(id, fmt::format("* welcome, you are {}\n", name));
  broadcast(id, fmt::format("* {} joined\n", name));
  return id;
}

void ChatRoom::leave(MemberId id, bool announce) {
  check_thread();
  auto it = members_.find(id);
  if (it == members_.end() || !it->second.conn) return;
  std::string name = std::move(it->second.nick);
  by_name_.erase(fold(name));
  --count_;
  if (busy_ > 0) {
    it->second.conn = nullptr;  // someone up the stack may be iterating: mark, sweep later
    marked_ = true;
  } else {
    members_.erase(it);
  }
  log_debug("chat: {} left", name);
  if (announce) broadcast(id, fmt::format("* {} left\n", name));
}

void ChatRoom::say(MemberId from, std::string_view text) {
  check_thread();
  const Member* m = find(from);
  if (!m) return;
  std::string line;
  line.reserve(m->nick.size() + 2 + text.size() + 1);
  line.append(m->nick).append(": ").append(text).push_back('\n');
  broadcast(from, line);
}

ChatRoom::Rename ChatRoom::rename(MemberId id, std::string_view name) {
  check_thread();
  Member* m = find(id);
  if (!m || !valid_nick(name)) return Rename::invalid;
  std::string key = fold(name), old_key = fold(m->nick);
  if (key != old_key && by_name_.contains(key)) return Rename::taken;
  std::string old = std::exchange(m->nick, std::string(name));
  by_name_.erase(old_key);
  by_name_.emplace(std::move(key), id);
  Busy busy(*this);
  tell(id, fmt::format("* you are now {}\n", name));
  if (old != name) broadcast(id, fmt::format("* {} is now {}\n", old, name));
  return Rename::ok;
}

void ChatRoom::who(MemberId id) {
  check_thread();
  std::string names;
  size_t n = 0;
  for (const auto& [other, m] : members_) {
    if (!m.conn || !m.conn->is_open()) continue;  // leaving: on_close is on its way
    names.append(n++ ? ", " : " ").append(m.nick);
  }
  tell(id, fmt::format("* {} here:{}\n", n, names));
}

void ChatRoom::tell(MemberId id, std::string_view line) {
  check_thread();
  Busy busy(*this);
  if (Member* m = find(id)) deliver(id, *m, line);
}

void ChatRoom::broadcast(MemberId except, std::string_view line) {
  Busy busy(*this);
  for (auto& [id, m] : members_)
    if (id != except && m.conn) deliver(id, m, line);
}

// The one place bytes leave the room, so the one place the backlog is checked.
//
// A member whose peer does not read (or reads slower than the room talks) accumulates
// output: everything said in the room is buffered for it. The connection's water marks do
// not help here, since they pause reading from that peer, not the others talking to it.
// The choices were: (a) make the talkers wait for the slowest reader (pause everyone's
// reading): one stalled client would freeze the room; (b) drop messages for the slow
// member: it would silently miss lines, and a chat log with holes is worse than a clear
// disconnect; (c) disconnect it past a bound. We do (c), with abort() rather than close():
// close() would keep the backlog in memory until it drains or close_timeout passes,
// which for a peer that is not reading means holding it for the whole timeout.
// max_backlog sits above the high-water mark (default 256 KiB), so a member that is
// merely behind for a moment, and already paused, is not dropped.
void ChatRoom::deliver(MemberId id, Member& m, std::string_view line) {
  if (!m.conn->is_open()) return;  // closing: the library would ignore the send anyway
  m.conn->send(line);
  if (!m.conn) return;  // the send closed it, and it left (a transport closing at once)
  if (!m.evicting && m.conn->pending_output() > options_.max_backlog) {
    m.evicting = true;
    to_evict_.push_back(id);  // not now: the caller may be iterating, see settle()
  }
}

// Runs when the outermost Busy ends: nothing iterates members_ any more.
void ChatRoom::settle() {
  if (marked_) {
    marked_ = false;
    std::erase_if(members_, [](const auto& kv) { return kv.second.conn == nullptr; });
  }
  // Aborting a member may run its on_close right here (a transport may finish a close
  // asked for outside that connection's callbacks at once), which leaves the room and
  // tells the others, which may find more members to evict: those are settled by that
  // broadcast's own Busy. Each id is looked up again, as an earlier abort may have made
  // it leave already.
  while (!to_evict_.empty()) {
    std::vector<MemberId> ids;
    ids.swap(to_evict_);
    for (MemberId id : ids) {
      Member* m = find(id);
      if (!m || !m->conn->is_open()) continue;
      log_warn("chat: disconnecting {} ({}): {} bytes unsent, past max_backlog {}", m->nick,
               m->conn->peer_address(), m->conn->pending_output(),
               options_.max_backlog);
      m->conn->abort();  // m may be gone after this
    }
  }
}

}  // namespace netloop::demo::chat
