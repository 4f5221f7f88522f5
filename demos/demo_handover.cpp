// netloop-demo --handover PATH: the flag and the wiring of HandoverClient/HandoverSource
// around the Server.
#include "demo_handover.hpp"

#include "demo_options.hpp"
#include "netloop/log.hpp"

namespace netloop::demo {

OptionGroup handover_option_group() {
  return {"Restart without loss",
          {
              {"--handover", "PATH", "a socket path",
               "a UNIX socket for restarts: a new instance started with the same\n"
               "PATH takes this one's listening sockets (no connection refused or\n"
               "reset), and this one drains and exits 0; nothing answering at PATH:\n"
               "bind as usual",
               [](DemoOptions& o, const std::string& v) -> std::string {
                 if (v.empty()) return "--handover needs a socket path";
                 o.handover_path = v;
                 return {};
               }},
          }};
}

DemoHandover::~DemoHandover() = default;

std::string DemoHandover::receive(std::vector<ListeningSocket>& inherited) {
  if (!enabled()) return {};
  std::string why;
  auto client = HandoverClient::request(path_, {}, &why);
  if (!client) return "--handover " + why;
  client_ = std::move(*client);
  lock_ = client_->take_lock();  // held while this instance runs
  if (!client_->found()) {
    client_.reset();
    return {};
  }
  inherited = client_->take_sockets();
  log_info("handover {}: took {} listening socket(s) from the running instance", path_,
           inherited.size());
  return {};
}

std::string DemoHandover::serve(Server& server) {
  if (!enabled()) return {};
  if (!client_) return listen(server);
  // Confirmed from loop 0 once it runs: the loops serve the sockets from then on.
  server.loop(0).post([this, &server] {
    if (server.draining()) {
      // Stopping already (SIGTERM right after the start): unconfirmed, the old one
      // sees the connection close and goes on serving.
      log_warn("handover {}: stopping before confirming; the old instance goes on serving",
               path_);
      client_.reset();
      return;
    }
    using Outcome = HandoverClient::Outcome;
    client_->confirm(server.loop(0), [this, &server](Outcome outcome, const std::string& why) {
      client_.reset();
      if (outcome == Outcome::refused) {
        // The old one said no: it goes on serving as before, this one steps back.
        log_error("handover {}: {}; stopping, the old instance goes on serving", path_, why);
        exit_code_ = 1;
        server.drain();
        return;
      }
      if (outcome == Outcome::unclear) {
        // It may be draining, or gone: stepping back could leave nobody serving, while
        // two instances serving the same sockets lose nothing.
        log_warn("handover {}: {}; serving on (the old instance may be gone, or may "
                 "still serve too until it is stopped)",
                 path_, why);
      } else {
        log_info("handover {}: the old instance drains; this one serves", path_);
      }
      if (std::string err = listen(server); !err.empty())
        log_error("{}; serving on, but the next restart cannot take over from this one", err);
    });
  });
  return {};
}

std::string DemoHandover::listen(Server& server) {
  std::string why;
  HandoverOptions options;
  options.not_taken = [&server] { server.restore_socket_options(); };
  auto source = HandoverSource::listen(
      server.loop(0), path_, [&server] { return server.listening_sockets(); },
      [&server] { server.drain(); }, options, &why);
  if (!source) return "--handover " + why;
  source_ = std::move(*source);
  return {};
}

}  // namespace netloop::demo
