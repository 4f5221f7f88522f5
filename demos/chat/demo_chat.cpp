// netloop-demo's example chat room: one room, so only the first loop serves it.
#include "chat/chat.hpp"
#include "demo_protocol.hpp"

namespace netloop::demo {

const DemoProtocol& chat_protocol() {
  static const DemoProtocol p{
      .name = "chat",
      .flag = "--chat",
      .listen_help = "example: a line-based chat room (all --chat listeners share it)",
      .shared = true,
      .setup = [](DemoRun& run, const std::vector<Address>& addresses) -> std::string {
        auto room = chat::make_chat_room();
        for (const auto& a : addresses)
          chat_protocol().add_stream(run, a, [room](EventLoop&, size_t) {
            return StreamService{.factory = chat::chat_factory(room)};
          });
        return {};
      },
  };
  return p;
}

}  // namespace netloop::demo
