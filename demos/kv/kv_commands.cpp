// The commands, dispatched on the name's length and then its letters, without copying
// or lower-casing it.
#include "kv/kv_commands.hpp"

#include <chrono>

#include "kv/resp_parser.hpp"

namespace netloop::demo::kv {
namespace {

using Args = std::span<const std::string_view>;

// Keys reclaimed per command by the expiry sweep: more than a command can add.
constexpr size_t kExpireBudget = 4;

// `lower` is lower case ASCII.
bool is(std::string_view s, std::string_view lower) noexcept {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

void wrong_arity(RespWriter& w, std::string_view name) {
  w.error_begin();
  w.error_piece("ERR wrong number of arguments for '");
  w.error_piece(name);
  w.error_piece("' command");
  w.error_end();
}

// Redis 7: the name and the first arguments, 128 characters of each at most.
void unknown_command(RespWriter& w, Args args) {
  w.error_begin();
  w.error_piece("ERR unknown command '");
  w.error_piece(args[0], 128);
  w.error_piece("', with args beginning with: ");
  size_t shown = 0;
  for (size_t i = 1; i < args.size() && shown < 128; ++i) {
    size_t n = std::min(args[i].size(), 128 - shown);
    w.error_piece("'");
    w.error_piece(args[i], n);
    w.error_piece("' ");
    shown += n + 3;
  }
  w.error_end();
}

void ping(Args a, RespWriter& w) {
  if (a.size() == 1) w.simple("PONG");
  else if (a.size() == 2) w.bulk(a[1]);
  else wrong_arity(w, "ping");
}

void echo(Args a, RespWriter& w) {
  if (a.size() == 2) w.bulk(a[1]);
  else wrong_arity(w, "echo");
}

void get(KvStore& s, Args a, TimePoint now, RespWriter& w) {
  if (a.size() != 2) return wrong_arity(w, "get");
  if (const KvStore::Entry* e = s.find(a[1], now)) w.bulk(e->value);
  else w.null();
}

void set(KvStore& s, Args a, TimePoint now, RespWriter& w) {
  if (a.size() < 3) return wrong_arity(w, "set");
  bool nx = false, xx = false, want_old = false, keep_ttl = false, has_ttl = false;
  int64_t ms = 0;
  const char* bad_number = nullptr;
  for (size_t i = 3; i < a.size(); ++i) {
    std::string_view o = a[i];
    bool last = i + 1 == a.size();
    if (is(o, "nx") && !xx) {
      nx = true;
    } else if (is(o, "xx") && !nx) {
      xx = true;
    } else if (is(o, "get")) {
      want_old = true;
    } else if (is(o, "keepttl") && !has_ttl) {
      keep_ttl = true;
    } else if ((is(o, "ex") || is(o, "px")) && !keep_ttl && !has_ttl && !last) {
      has_ttl = true;
      int64_t v = 0;
      if (!parse_integer(a[++i], v)) {
        bad_number = "ERR value is not an integer or out of range";
      } else if (v <= 0 || (is(o, "ex") && v > INT64_MAX / 1000)) {
        bad_number = "ERR invalid expire time in 'set' command";
      } else {
        ms = is(o, "ex") ? v * 1000 : v;
      }
    } else if (is(o, "exat") || is(o, "pxat")) {
      w.error_begin();
      w.error_piece("ERR SET option '");
      w.error_piece(o);
      w.error_piece("' is not supported by this server (use EX or PX)");
      w.error_end();
      return;
    } else {
      return w.error("ERR syntax error");
    }
  }
  if (bad_number) return w.error(bad_number);
  TimePoint expires = TimePoint::max();
  if (has_ttl) {
    auto room = std::chrono::duration_cast<std::chrono::milliseconds>(TimePoint::max() - now);
    if (ms >= room.count()) return w.error("ERR invalid expire time in 'set' command");
    expires = now + std::chrono::milliseconds(ms);
  }
  KvStore::Entry* e = s.find(a[1], now);
  if (want_old) {  // the reply is the old value, whether or not the value is set
    if (e) w.bulk(e->value);
    else w.null();
  }
  if ((nx && e) || (xx && !e)) {
    if (!want_old) w.null();
    return;
  }
  s.put(e, a[1], a[2], has_ttl ? KvStore::Ttl::set : keep_ttl ? KvStore::Ttl::keep : KvStore::Ttl::clear,
        expires);
  if (!want_old) w.simple("OK");
}

void del(KvStore& s, Args a, TimePoint now, RespWriter& w) {
  if (a.size() < 2) return wrong_arity(w, "del");
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); ++i) n += s.erase(a[i], now);
  w.integer(n);
}

void exists(KvStore& s, Args a, TimePoint now, RespWriter& w) {
  if (a.size() < 2) return wrong_arity(w, "exists");
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); ++i) n += s.find(a[i], now) != nullptr;
  w.integer(n);
}

void flushall(KvStore& s, Args a, RespWriter& w) {
  if (a.size() > 2 || (a.size() == 2 && !is(a[1], "async") && !is(a[1], "sync")))
    return w.error("ERR syntax error");
  s.clear();
  w.simple("OK");
}

// The parameters CONFIG GET knows: what redis-benchmark asks for at start (persistence
// settings, shown in its report). Values say what is true: nothing is ever saved.
struct Param {
  std::string_view name;
  std::string_view value;
};
constexpr Param kParams[] = {{"save", ""}, {"appendonly", "no"}};

void config(Args a, RespWriter& w) {
  if (a.size() < 2) return wrong_arity(w, "config");
  if (!is(a[1], "get")) {
    w.error_begin();
    w.error_piece("ERR unknown subcommand '");
    w.error_piece(a[1], 128);
    w.error_piece("'. Try CONFIG HELP.");
    w.error_end();
    return;
  }
  if (a.size() < 3) return wrong_arity(w, "config|get");
  bool match[std::size(kParams)] = {};
  size_t matched = 0;
  for (size_t i = 2; i < a.size(); ++i)
    for (size_t k = 0; k < std::size(kParams); ++k)
      if (!match[k] && (a[i] == "*" || is(a[i], kParams[k].name))) {
        match[k] = true;
        ++matched;
      }
  w.array(2 * matched);
  for (size_t k = 0; k < std::size(kParams); ++k)
    if (match[k]) {
      w.bulk(kParams[k].name);
      w.bulk(kParams[k].value);
    }
}

}  // namespace

After execute(KvStore& s, Args a, TimePoint now, RespWriter& w) {
  s.expire_some(now, kExpireBudget);
  std::string_view name = a[0];
  switch (name.size()) {
    case 3:
      if (is(name, "get")) return get(s, a, now, w), After::go_on;
      if (is(name, "set")) return set(s, a, now, w), After::go_on;
      if (is(name, "del")) return del(s, a, now, w), After::go_on;
      break;
    case 4:
      if (is(name, "ping")) return ping(a, w), After::go_on;
      if (is(name, "echo")) return echo(a, w), After::go_on;
      if (is(name, "quit")) {
        w.simple("OK");
        return After::close;
      }
      break;
    case 6:
      if (is(name, "exists")) return exists(s, a, now, w), After::go_on;
      if (is(name, "dbsize")) {
        if (a.size() != 1) return wrong_arity(w, "dbsize"), After::go_on;
        w.integer(int64_t(s.live_size(now)));
        return After::go_on;
      }
      if (is(name, "config")) return config(a, w), After::go_on;
      break;
    case 7:
      if (is(name, "command")) return w.array(0), After::go_on;
      break;
    case 8:
      if (is(name, "flushall")) return flushall(s, a, w), After::go_on;
      break;
    default:
      break;
  }
  unknown_command(w, a);
  return After::go_on;
}

}  // namespace netloop::demo::kv
