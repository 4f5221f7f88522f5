// netloop-demo's example key-value store (a Redis subset): one store, so only the first
// loop serves it.
#include "demo_protocol.hpp"
#include "kv/kv.hpp"

namespace netloop::demo {

const DemoProtocol& kv_protocol() {
  static const DemoProtocol p{
      .name = "kv",
      .flag = "--kv",
      .listen_help = "example: a key-value store speaking a Redis subset (PING, SET,\n"
                     "GET, DEL, ...), for redis-cli and redis-benchmark",
      .shared = true,
      .setup = [](DemoRun& run, const std::vector<Address>& addresses) -> std::string {
        auto store = kv::make_kv_store();
        for (const auto& a : addresses)
          kv_protocol().add_stream(run, a, [store](EventLoop&, size_t) {
            return StreamService{.factory = kv::kv_factory(store)};
          });
        return {};
      },
  };
  return p;
}

}  // namespace netloop::demo
