// TcpConnection: one TCP socket driving one stream handler, through the lifecycle rules
// of StreamConnection; this class only moves bytes between the socket and those rules.
//
// Writes go out at once; only what the kernel pushes back is buffered, and only then is
// write interest asked for. Past `high_water` unsent bytes it stops reading from the peer
// until the backlog drains below `low_water`.
#pragma once

#include <memory>

#include "netloop/event_loop.hpp"
#include "netloop/fd.hpp"
#include "netloop/io_watcher.hpp"
#include "netloop/stream_connection.hpp"

namespace netloop {

class TcpConnection final : public StreamConnection, private Transport {
 public:
  TcpConnection(EventLoop& loop, Fd fd, const Address& peer, const Address& local,
                std::unique_ptr<StreamHandler> handler, const ConnectionOptions& options);
  ~TcpConnection() override;

  // Registers with the loop and calls on_open; an error means nothing was registered.
  Result<void> start();

 private:
  void on_io(uint32_t ready);

  // Transport: the socket.
  IoResult read_some(void* into, size_t n) override;
  IoResult write_some(const void* data, size_t n, bool more) override;
  IoResult write_gather(std::span<const std::string_view> pieces) override;
  IoResult write_file(int fd, uint64_t offset, size_t n) override;
  void send_end_of_stream() noexcept override;
  void want_events(bool read, bool write) override;
  void release_transport(bool reset) noexcept override;
  bool all_acknowledged() const noexcept override;

  IoWatcher watcher_;
  Fd fd_;
};

}  // namespace netloop
