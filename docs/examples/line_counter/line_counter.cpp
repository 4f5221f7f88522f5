// line-counter: the per-connection handler (framing, commands, idle timeout, backpressure).
#include "line_counter.hpp"

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace line_counter {

using netloop::Buffer;
using netloop::CloseInfo;
using netloop::Connection;
using netloop::Duration;
using netloop::TimePoint;

namespace {

// Replies assembled in one on_data call go out in one send(), or sooner once they reach
// this size, so that output_full() learns of them while commands are still waiting.
constexpr size_t kFlushAt = 4096;

// Bytes no text client sends: a TLS handshake, a port scanner, a binary protocol.
bool has_control_chars(std::string_view line) {
  for (unsigned char ch : line)
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return true;
  return false;
}

void append_number(std::string& out, int64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

}  // namespace

void LineCounterHandler::on_open(Connection& conn) {
  ++service_->stats.connections;
  ++service_->stats.open;
  last_command_ = conn.now();
  if (service_->options.idle_timeout > Duration::zero())
    arm_idle_timer(conn, service_->options.idle_timeout);
}

void LineCounterHandler::on_data(Connection& conn, Buffer& input) {
  const Options& opt = service_->options;
  std::string& out = service_->replies;
  out.clear();
  const TimePoint now = conn.now();
  bool quit = false;

  while (!quit && !input.empty()) {
    if (conn.output_full()) break;  // on_data is offered the rest once the peer catches up
    // Look no further than a line may be long: a peer cannot make us scan, or keep, more.
    std::string_view window = input.view().substr(0, opt.max_line);
    size_t lf = window.find('\n');
    if (lf == std::string_view::npos) {
      if (window.size() == opt.max_line) {  // max_line bytes and still no end of line
        out += "ERR line too long\n";
        quit = true;
      }
      break;  // the rest of the line has not arrived yet: leave it in `input`
    }
    std::string_view line = window.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (has_control_chars(line)) {
      conn.abort();  // no reply, no flush: replies still in `out` are dropped too
      return;
    }
    if (!line.empty()) {
      ++service_->stats.commands;
      last_command_ = now;  // all the idle timer needs: see on_idle_timer
      quit = !execute(line, out);
    }
    input.consume(lf + 1);  // `line` points into `input`: consume only once done with it
    if (out.size() >= kFlushAt) {
      conn.send(out);
      out.clear();
    }
  }
  if (!out.empty()) conn.send(out);

  stalled_ = !quit && !input.empty() && conn.output_full();
  if (quit || (peer_done_ && !stalled_)) conn.close();
}

// Runs one command line, appending its reply to `out`. False: close after this reply.
bool LineCounterHandler::execute(std::string_view line, std::string& out) {
  size_t space = line.find(' ');
  std::string_view verb = line.substr(0, space);
  std::string_view name = space == std::string_view::npos ? "" : line.substr(space + 1);
  if (verb == "QUIT") {
    out += "BYE\n";
    return false;
  }
  if (verb != "INCR" && verb != "GET") {
    out += "ERR unknown command\n";
    return true;
  }
  if (name.empty() || name.size() > service_->options.max_name ||
      name.find(' ') != std::string_view::npos) {
    out += "ERR usage: ";
    out += verb;
    out += " name\n";
    return true;
  }
  auto& counters = service_->counters;
  auto it = counters.find(name);
  int64_t value = it == counters.end() ? 0 : it->second;
  if (verb == "INCR") {
    if (value == INT64_MAX) {
      out += "ERR overflow\n";
      return true;
    }
    if (it == counters.end()) {
      if (counters.size() >= service_->options.max_counters) {
        out += "ERR too many counters\n";
        return true;
      }
      it = counters.emplace(std::string(name), 0).first;
    }
    value = ++it->second;
  }
  out += "OK ";
  append_number(out, value);
  out += '\n';
  return true;
}

void LineCounterHandler::on_peer_shutdown(Connection& conn, Buffer&) {
  // The default closes at once (after flushing what was sent). Commands still waiting in
  // the input behind a full output would be lost: answer those first; on_data closes.
  peer_done_ = true;
  if (!stalled_) conn.close();
}

void LineCounterHandler::on_close(Connection&, const CloseInfo& info) {
  --service_->stats.open;
  ++service_->stats.closes[size_t(info.reason)];
  idle_timer_ = {};  // the connection has cancelled it already
}

void LineCounterHandler::arm_idle_timer(Connection& conn, Duration delay) {
  // One timer for the connection's life: restart_timer re-arms it after it fired. (Idle
  // here means no command, which is why this is not conn.set_idle_timeout(): that counts
  // any byte, a blank line included.)
  if (idle_timer_) {
    conn.restart_timer(idle_timer_, delay);
    return;
  }
  idle_timer_ = conn.start_timer(delay, Duration::zero(),
                                 [this](Connection& c) { on_idle_timer(c); });
}

// Lazy deadline: a command only stores last_command_. The timer, still set for an older
// deadline, finds the new one when it fires and sleeps again for the rest, so a busy
// connection costs no timer work per command.
void LineCounterHandler::on_idle_timer(Connection& conn) {
  if (!conn.is_open()) return;  // closing: the connection finishes that on its own
  const Duration idle = service_->options.idle_timeout;
  const TimePoint now = conn.now();
  const TimePoint deadline = last_command_ + idle;
  if (now < deadline || conn.output_full()) {
    // Not yet; or the peer is behind on reading our replies (its commands wait in the
    // input): that is not idleness. Look again later.
    arm_idle_timer(conn, now < deadline ? deadline - now : idle);
    return;
  }
  ++service_->stats.idle_timeouts;
  conn.send("ERR idle timeout\n");
  conn.close();
}

netloop::StreamHandlerFactory line_counter_factory(std::shared_ptr<Service> service) {
  return [service = std::move(service)] { return std::make_unique<LineCounterHandler>(service); };
}

}  // namespace line_counter
