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

class TlsLayer;
class ProxyStage;

class TcpConnection final : public StreamConnection, private Transport {
 public:
  TcpConnection(EventLoop& loop, Fd fd, const Address& peer, const Address& local,
                std::unique_ptr<StreamHandler> handler, const ConnectionOptions& options);
  ~TcpConnection() override;

  // Library-internal (TcpListener, Connector), before start(): the connection runs this
  // TLS session's handshake first and moves its bytes through it.
  void use_tls(std::unique_ptr<TlsLayer> layer) noexcept;
  // ...with a shorter handshake timeout than the context's (a refusal's: it must not
  // hold a descriptor for long).
  void cap_handshake_timeout(Duration cap) noexcept { handshake_cap_ = cap; }

  // Library-internal (TcpListener), before start(): the connection first reads a PROXY
  // protocol header with this stage (before TLS), and takes the client it names as its peer.
  void use_proxy_protocol(std::unique_ptr<ProxyStage> stage) noexcept;

  // Registers with the loop and calls on_open (with TLS, once the handshake is done); an
  // error means nothing was registered.
  Result<void> start();

  const TlsInfo* tls() const noexcept override;
  // The PROXY header's source when it named the client; the socket's peer otherwise.
  const Address& peer_address() const noexcept override;
  const proxy_protocol::Header* proxy_header() const noexcept override;

 private:
  void on_io(uint32_t ready);
  // After the PROXY stage (if any): the TLS handshake, or on_open.
  void open_transport();
  // PROXY protocol (tcp_connection_proxy.cpp).
  void start_proxy_stage();
  void on_proxy_io(uint32_t ready);
  void drive_proxy_stage();
  void proxy_stage_failed(std::string_view why);
  void queue_rest_read();
  // TLS: the handshake, then events mapped through what the session waits for.
  void drive_handshake();
  void handshake_failed();
  void on_tls_io(uint32_t ready);
  void apply_tls_interest();
  void queue_tls_read();

  // Transport: the socket.
  IoResult read_some(void* into, size_t n) override;
  IoResult write_some(const void* data, size_t n, bool more) override;
  IoResult write_gather(std::span<const std::string_view> pieces) override;
  IoResult write_file(int fd, uint64_t offset, size_t n) override;
  void send_end_of_stream() noexcept override;
  void want_events(bool read, bool write) override;
  void release_transport(bool reset) noexcept override;
  bool all_acknowledged() const noexcept override;
  std::error_code error_for(int error) const noexcept override;

  IoWatcher watcher_;
  Fd fd_;
  std::unique_ptr<TlsLayer> tls_;
  std::unique_ptr<ProxyStage> proxy_;
  bool rest_read_queued_ = false;  // bytes read with the PROXY header wait to be delivered
  TimerId handshake_timer_;
  bool handshaking_ = false;
  bool tls_ready_ = false;  // the handshake finished
  Duration handshake_cap_{};
  bool tls_read_queued_ = false;
  bool conn_reads_ = false;   // what the connection asked for (want_events)
  bool conn_writes_ = false;
};

}  // namespace netloop
