// ChatRoom: the state the chat connections of one event loop share (members, nicknames)
// and the one way messages leave it (deliver: send, then enforce max_backlog).
//
// Sharing it safely, with no lock:
// - Every handler holds a std::shared_ptr<ChatRoom> (copied from the one the factory
//   captured), so the room outlives every handler and every listener using it, whichever
//   goes first. The room holds only non-owning Connection pointers.
// - A Connection pointer is valid from on_open to on_close, so a member joins in on_open
//   and leaves in on_close, whatever the close reason (and in the handler's destructor, in
//   case a transport drops a handler without on_close): the room never holds a dangling
//   pointer.
// - All of it runs on one loop thread, one callback at a time, so no two handlers touch
//   the room at once (the shared_ptr count is atomic; the room needs not be). The room
//   records that thread on first use and asserts it on every call (debug builds).
// - A send can make another connection close. TcpConnection defers that close (and its
//   on_close) until after the current callback, but nothing in the Connection contract
//   promises it (MemoryConnection runs on_close at once when abort() is called from
//   outside the connection's own callbacks). So a member leaving while the room is
//   iterating only marks its slot, which is swept after the iteration; and members found
//   over the backlog limit are aborted after the iteration, never in the middle of it.
//
// With several loops (one per thread) no room may be shared between them: a Connection
// may only be used on its own loop's thread. Either give each loop a room of its own (a
// factory per loop; members then meet only members of their loop), or, for one room
// across loops, keep a room per loop holding only that loop's connections and relay: a
// line said on one loop goes to that loop's members at once and is post()ed, as a copy,
// to every other loop, whose room delivers it to its own members. Only bytes cross
// threads, never a Connection pointer, so a member closing meanwhile is harmless. What is
// global (unique names, the member count) then needs one owner that the other loops ask
// through post(), or a lock. A handler reaches its loop as conn.loop() (for post() from
// the other loops, defer(), timers of the room's own). Relaying is not written here,
// which is why netloop-demo registers --chat on one loop only (Loops::first).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "chat/chat.hpp"
#include "netloop/protocol.hpp"

namespace netloop::demo::chat {

using MemberId = uint64_t;

// A nickname: 1 to 32 characters of [A-Za-z0-9_-].
bool valid_nick(std::string_view name) noexcept;

class ChatRoom {
 public:
  explicit ChatRoom(const ChatOptions& options) : options_(options) {}
  ChatRoom(const ChatRoom&) = delete;
  ChatRoom& operator=(const ChatRoom&) = delete;

  const ChatOptions& options() const noexcept { return options_; }
  size_t size() const noexcept { return count_; }

  // Adds `conn` under a fresh guest-N name, greets it and tells the others. nullopt when
  // the room is full (then nothing is sent: the caller says so and closes).
  std::optional<MemberId> join(Connection& conn);
  // Removes the member (no-op if already gone). `announce` tells the others; a server
  // shutting down passes false, since telling N members about N departures is N² sends.
  void leave(MemberId id, bool announce);

  // "NAME: text" to every other member.
  void say(MemberId from, std::string_view text);
  enum class Rename { ok, invalid, taken };
  Rename rename(MemberId id, std::string_view name);
  // "* N here: a, b, c" to the member.
  void who(MemberId id);
  // Sends one line to one member (dropped if its connection is closing), and disconnects
  // it if its backlog is now past max_backlog.
  void tell(MemberId id, std::string_view line);

  std::string_view nick(MemberId id) const;

 private:
  struct Member {
    Connection* conn;  // nullptr: left while the room was iterating (swept afterwards)
    std::string nick;
    bool evicting = false;
  };
  // Marks a stretch that iterates members_ or sends: leaving only marks the slot, and
  // evictions wait, until the outermost one ends.
  struct Busy;

  Member* find(MemberId id);
  const Member* find(MemberId id) const;
  static std::string fold(std::string_view name);  // the key that makes names unique
  void broadcast(MemberId except, std::string_view line);
  void deliver(MemberId id, Member& m, std::string_view line);
  void settle();  // after the outermost Busy: sweep left slots, abort evicted members
  void check_thread();

  ChatOptions options_;
  std::map<MemberId, Member> members_;           // by id, which is join order
  std::unordered_map<std::string, MemberId> by_name_;  // folded nick -> member
  std::vector<MemberId> to_evict_;
  size_t count_ = 0;  // members_ minus the marked slots
  int busy_ = 0;
  bool marked_ = false;  // some slots of members_ are marked as left
  MemberId next_id_ = 1;
  uint64_t next_guest_ = 1;
  std::optional<std::thread::id> thread_;
};

}  // namespace netloop::demo::chat
