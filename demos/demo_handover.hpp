// netloop-demo --handover PATH: restart without loss. The flag (its option group), and
// the run-time wiring: take the sockets from the instance at PATH (or start fresh), then
// confirm, and listen at PATH for the next instance.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "netloop/handover.hpp"
#include "netloop/server.hpp"
#include "option_table.hpp"

namespace netloop::demo {

OptionGroup handover_option_group();

class DemoHandover {
 public:
  explicit DemoHandover(std::string path) : path_(std::move(path)) {}
  ~DemoHandover();  // before the server's loops go (declare it after the Server)
  bool enabled() const noexcept { return !path_.empty(); }

  // Before Server::start: the sockets of the instance at PATH, if one answers there.
  // Returns what went wrong ("": nothing).
  std::string receive(std::vector<ListeningSocket>& inherited);
  // After Server::start: with sockets taken, tells the old instance (on loop 0, once it
  // runs) and then listens at PATH; without, listens at PATH now.
  std::string serve(Server& server);
  int exit_code() const noexcept { return exit_code_; }

 private:
  std::string listen(Server& server);

  std::string path_;
  Fd lock_;  // PATH.lock, shared, for this instance's lifetime
  std::unique_ptr<HandoverClient> client_;
  std::unique_ptr<HandoverSource> source_;
  int exit_code_ = 0;
};

}  // namespace netloop::demo
