// netloop-demo's shared options (reactor, limits, logging) as a table, the listener flags
// made from the protocol list, and the checks that look at the options as a whole.
#include "demo_options.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "demo_handover.hpp"
#include "demo_protocol.hpp"
#include "demo_proxy_protocol.hpp"
#include "demo_tls.hpp"
#include "netloop/byte_size.hpp"
#include "option_table.hpp"

namespace netloop::demo {
namespace {

// "R/s" (or a bare R): requests per second, above 0 and at most a million.
std::string parse_rate(const std::string& v, double& out) {
  std::string number = v;
  if (number.size() > 2 && number.compare(number.size() - 2, 2, "/s") == 0)
    number.resize(number.size() - 2);
  char* end = nullptr;
  double r = number.empty() || !(std::isdigit(static_cast<unsigned char>(number[0])) || number[0] == '.')
                 ? 0
                 : std::strtod(number.c_str(), &end);
  if (!end || *end != '\0' || !(r > 0) || r > 1e6)
    return "--rate-limit " + v + ": expected requests per second above 0, such as 5/s";
  out = r;
  return {};
}

OptionGroup per_client_group() {
  return {"Per-client limits (a client: an IPv4 address, or an IPv6 network, /64 by default)",
          {
              {"--max-connections-per-ip", "N", "a number",
               "connections one client may hold at once across all listeners;\n"
               "past it new ones are refused at once (HTTP: 503) and counted\n"
               "(default 0: no limit; behind a load balancer every client shares\n"
               "its address)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (!parse_count(v, 0, 10'000'000, o.max_connections_per_ip))
                   return "--max-connections-per-ip " + v +
                          ": expected a whole number from 0 (no limit) to 10000000";
                 return {};
               }},
              {"--client-ipv6-prefix", "BITS", "a prefix length",
               "IPv6 clients are grouped by this many leading bits, 32 to 128\n"
               "(default 64: one subscriber's network)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 size_t n = 0;
                 if (!parse_count(v, 32, 128, n))
                   return "--client-ipv6-prefix " + v + ": expected a prefix length from 32 to 128";
                 o.client_ipv6_prefix = int(n);
                 return {};
               }},
              {"--rate-limit", "R/s", "a rate such as 5/s",
               "HTTP requests per second per client; past it a 429 with\n"
               "Retry-After, the connection kept (default: no limit)",
               [](DemoOptions& o, const std::string& v) { return parse_rate(v, o.rate_limit); }},
              {"--rate-burst", "B", "a number",
               "requests a client may make at once after a quiet spell\n"
               "(default: the rate, rounded up)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (!parse_count(v, 1, 1'000'000, o.rate_burst))
                   return "--rate-burst " + v + ": expected a whole number from 1 to 1000000";
                 return {};
               }},
              {"--rate-limit-clients", "N", "a number",
               "clients whose request rate is remembered; past it the least\n"
               "recently seen is forgotten (default 65536)",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (!parse_count(v, 16, 10'000'000, o.rate_limit_clients))
                   return "--rate-limit-clients " + v + ": expected a whole number from 16 to 10000000";
                 return {};
               }},
          }};
}

std::vector<OptionGroup> common_groups() {
  return {
      {"Reactor",
       {
           {"--threads", "N", "a number",
            "event loops, one thread each, every one with its own listeners\n"
            "(SO_REUSEPORT); chat and kv stay on the first (default 1)",
            [](DemoOptions& o, const std::string& v) -> std::string {
              if (!parse_count(v, 1, 256, o.threads))
                return "--threads " + v + ": expected a whole number from 1 to 256";
              return {};
            }},
           {"--poller", "NAME", "a backend name",
            "poller backend (see --list-pollers); default: the best available",
            [](DemoOptions& o, const std::string& v) -> std::string {
              if (v.empty()) return "--poller needs a backend name";
              o.poller = v;
              return {};
            }},
           {"--list-pollers", "", "",
            "list poller backends and whether this build and kernel can use them",
            [](DemoOptions& o, const std::string&) -> std::string {
              o.list_pollers = true;
              return {};
            }},
           {"--drain-timeout", "SECS", "a number of seconds",
            "on SIGTERM/SIGINT stop accepting, let requests in flight finish,\n"
            "close idle connections; exit within this long (default 10); a\n"
            "second signal exits at once",
            [](DemoOptions& o, const std::string& v) -> std::string {
              return parse_timeout("--drain-timeout", v, false, o.drain_timeout);
            }},
           {"--defer-accept", "DURATION", "a duration, e.g. 5s",
            "accept a connection once its client has sent something, or after\n"
            "about this long (Linux TCP_DEFER_ACCEPT; default 0: at the\n"
            "handshake). For clients that speak first (HTTP, TLS): one wake-up\n"
            "per new connection instead of two; where the server speaks first\n"
            "(SMTP or SSH behind --tcp-proxy) each connection would wait it out",
            [](DemoOptions& o, const std::string& v) -> std::string {
              if (auto why = parse_duration("--defer-accept", v, o.defer_accept); !why.empty())
                return why;
              if (o.defer_accept > seconds(3600))
                return "--defer-accept " + v + ": expected at most an hour (3600s)";
              return {};
            }},
           {"--max-connections", "N", "a number",
            "connections open at once across all listeners; past it new ones\n"
            "are refused at once (HTTP: 503) and counted (default 10000)",
            [](DemoOptions& o, const std::string& v) -> std::string {
              if (!parse_count(v, 1, 10'000'000, o.max_connections))
                return "--max-connections " + v + ": expected a whole number from 1 to 10000000";
              return {};
            }},
       }},
      {"Limits",
       {
           {"--high-water", "BYTES", "a size in bytes",
            "unsent bytes per connection that pause reading (default 256k)",
            [](DemoOptions& o, const std::string& v) {
              return parse_positive_size("--high-water", v, o.connection.high_water);
            }},
           {"--low-water", "BYTES", "a size in bytes",
            "unsent bytes at which reading resumes (default 64k)",
            [](DemoOptions& o, const std::string& v) {
              o.low_water_given = true;
              return parse_positive_size("--low-water", v, o.connection.low_water);
            }},
           {"--max-input", "BYTES", "a size in bytes",
            "unconsumed input per connection before it is closed (default 1m)",
            [](DemoOptions& o, const std::string& v) {
              return parse_positive_size("--max-input", v, o.connection.max_input);
            }},
           {"--write-timeout", "SECS", "a number of seconds",
            "buffered output making no progress this long resets the connection\n"
            "(default 60; 0 disables)",
            [](DemoOptions& o, const std::string& v) {
              return parse_timeout("--write-timeout", v, true, o.connection.write_timeout);
            }},
       }},
      {"Other",
       {
           {"--log-level", "LEVEL", "a level", "debug, info, warn, error or off (default info)",
            [](DemoOptions& o, const std::string& v) -> std::string {
              auto lvl = parse_log_level(v);
              if (!lvl) return "--log-level " + v + ": expected debug, info, warn, error or off";
              o.log_level = *lvl;
              return {};
            }},
           {"--help", "", "", "show this help",
            [](DemoOptions& o, const std::string&) -> std::string {
              o.help = true;
              return {};
            }},
           {"--version", "", "", "show the version",
            [](DemoOptions& o, const std::string&) -> std::string {
              o.version = true;
              return {};
            }},
       }},
  };
}

// Every option: the listeners (one flag per protocol), each protocol's own, the shared.
std::vector<OptionGroup> all_groups() {
  std::vector<OptionGroup> groups;
  OptionGroup listeners{"Listeners (repeatable)", {}};
  for (const DemoProtocol* p : demo_protocols()) {
    std::string_view value = p->listen_value.empty() ? "HOST:PORT" : p->listen_value;
    listeners.options.push_back(
        {p->flag, value, value, p->listen_help,
         [p](DemoOptions& o, const std::string& v) -> std::string {
           std::string why;
           if (p->parse_listener) {
             Address listen;
             if (v.empty()) return std::string(p->flag) + " needs " + std::string(p->listen_value);
             why = p->parse_listener(o, v, listen);
             if (!why.empty()) return std::string(p->flag) + " " + v + ": " + why;
             o.listeners.push_back({p, listen});
             return {};
           }
           auto a = Address::parse_numeric(v, &why);
           if (!a) return std::string(p->flag) + (v.empty() ? " needs HOST:PORT" : " " + v + ": " + why);
           o.listeners.push_back({p, *a});
           return {};
         }});
  }
  groups.push_back(std::move(listeners));
  for (const DemoProtocol* p : demo_protocols())
    if (!p->options.empty()) groups.push_back({p->options_title, p->options});
  groups.push_back(tls_option_group());
  groups.push_back(proxy_protocol_option_group());
  groups.push_back(handover_option_group());
  for (auto& g : common_groups()) groups.push_back(std::move(g));
  groups.insert(groups.end() - 2, per_client_group());  // after Reactor, before Limits
  return groups;
}

}  // namespace

std::vector<Address> DemoOptions::addresses(std::string_view protocol) const {
  std::vector<Address> out;
  for (const auto& l : listeners)
    if (l.protocol->name == protocol) out.push_back(l.address);
  return out;
}

std::string demo_usage() {
  std::string usage =
      "Usage: netloop-demo [OPTIONS]\n"
      "\n"
      "Serves the built-in protocols from one event loop. With no listener options it serves\n"
      "TCP and UDP echo on 127.0.0.1:7007 and HTTP on 127.0.0.1:8080 (the built-in page).\n";
  usage += render_groups(all_groups());
  usage +=
      "  SIGUSR1                logs a one-line summary of the counters\n"
      "  SIGHUP                 reloads the TLS certificates (new connections get them;\n"
      "                         open ones keep theirs; on failure the old ones stay)\n"
      "\n"
      "SIGINT or SIGTERM drains the server and exits 0 (a second one exits at once). Bad\n"
      "options or a listener that cannot bind exit with code 2.\n";
  return usage;
}

ParseOutcome parse_demo_options(const std::vector<std::string>& args) {
  DemoOptions o;
  auto fail = [](std::string msg) { return ParseOutcome{std::nullopt, std::move(msg)}; };
  if (std::string why = apply_options(all_groups(), args, o); !why.empty()) return fail(why);
  if (o.connection.low_water > o.connection.high_water) {
    if (o.low_water_given) return fail("--low-water must not exceed --high-water");
    o.connection.low_water = o.connection.high_water / 4;  // only --high-water was lowered
  }
  if (o.rate_burst > 0 && o.rate_limit == 0) return fail("--rate-burst needs --rate-limit");
  if (o.rate_limit > 0 && o.rate_burst == 0)
    o.rate_burst = std::max<size_t>(1, size_t(std::ceil(o.rate_limit)));
  bool any_service = false;
  for (const auto& l : o.listeners) any_service = any_service || l.protocol->is_service;
  if (!any_service) {
    for (const DemoProtocol* p : demo_protocols())
      if (p->default_listener) o.listeners.push_back({p, *p->default_listener});
  }
  if (std::string why = check_tls_options(o); !why.empty()) return fail(why);
  if (std::string why = check_proxy_protocol_options(o); !why.empty()) return fail(why);
  for (const DemoProtocol* p : demo_protocols()) {
    if (!p->check) continue;
    bool listening = false;
    for (const auto& l : o.listeners) listening = listening || l.protocol == p;
    if (std::string why = p->check(o, listening); !why.empty()) return fail(why);
  }
  return {std::move(o), {}};
}

}  // namespace netloop::demo
