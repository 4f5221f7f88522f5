// splice-forward: does splice(2) through a pipe beat recv+send through a user buffer for
// a TCP proxy's byte copy (issue 17, HAProxy's `option splice-auto`)? Standalone: no
// netloop, so it measures the two copies and nothing else.
//
// Two loopback TCP connections, A (load -> forwarder) and B (forwarder -> load). A
// forwarder thread waits for A to be readable (level-triggered epoll, one event per
// wake-up like a proxy), then moves what one read gets to B, either
//   copy    recv() into a 64 KiB buffer, send() it all;
//   splice  splice(A -> pipe, 64 KiB, nonblocking), splice(pipe -> B) until the pipe is
//           empty (one pipe per direction, made once, as HAProxy keeps them).
// Workloads:
//   pp64     one 64-byte message at a time: the load writes it to A and reads it back
//            from B before the next (the per-message cost of a chatty connection);
//   pp64k    the same with 64 KiB messages;
//   bulk64k  64 KiB messages written back to back by one thread and drained by
//            another (throughput).
// The forwarder's CPU is its own thread's (CLOCK_THREAD_CPUTIME_ID: user + system,
// including the loopback softirq work done on its sends), divided by the messages moved.
// Methods alternate round by round; medians and splice/copy ratios are printed at the end.
//
//   build/bench/splice-forward [--rounds N] [--duration SECONDS] [--pipe-size BYTES]
//
// Linux only. Loopback (127.0.0.1) only.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "splice-forward: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// A connected loopback TCP pair: `out` connects, `in` is what the listener accepted.
void tcp_pair(int& out, int& in) {
  int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0) die("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("bind 127.0.0.1:0");
  if (::listen(l, 1) != 0) die("listen");
  if (::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0) die("getsockname");
  out = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (out < 0) die("socket");
  if (::connect(out, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
  in = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  if (in < 0) die("accept");
  ::close(l);
  int one = 1;  // as netloop's connections and HAProxy's
  ::setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("send");
    }
    p += r;
    n -= size_t(r);
  }
}

// Reads exactly n bytes; false at end of stream.
bool read_exact(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EINTR) continue;
      die("recv");
    }
    p += r;
    n -= size_t(r);
  }
  return true;
}

enum class Method { copy, splice };
enum class Load { pingpong, stream };

struct Workload {
  const char* name;
  Load load;
  size_t size;
};

struct Result {
  double cpu_us_per_msg = 0;
  double msgs_per_s = 0;
  double mb_per_s = 0;
};

constexpr size_t kChunk = 64 * 1024;  // one read's worth, as netloop's scratch and HAProxy's buffer

// Moves bytes from `in` (nonblocking) to `out` (blocking) until `in` ends; returns the
// forwarder thread's CPU seconds.
double forward(Method m, int in, int out, int pipe_size) {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev) != 0) die("epoll_ctl");
  int pipefd[2] = {-1, -1};
  if (m == Method::splice) {
    if (::pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) != 0) die("pipe2");
    if (pipe_size > 0 && ::fcntl(pipefd[1], F_SETPIPE_SZ, pipe_size) < 0) die("F_SETPIPE_SZ");
  }
  std::vector<char> buf(kChunk);
  const double cpu0 = thread_cpu_seconds();
  for (;;) {
    epoll_event got{};
    int n = ::epoll_wait(ep, &got, 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    if (m == Method::copy) {
      ssize_t r = ::recv(in, buf.data(), buf.size(), 0);
      if (r == 0) break;
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        die("recv");
      }
      send_all(out, buf.data(), size_t(r));
    } else {
      ssize_t r = ::splice(in, nullptr, pipefd[1], nullptr, kChunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (r == 0) break;
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        die("splice socket -> pipe");
      }
      size_t left = size_t(r);
      while (left > 0) {
        ssize_t w = ::splice(pipefd[0], nullptr, out, nullptr, left, SPLICE_F_MOVE);
        if (w < 0) {
          if (errno == EINTR) continue;
          die("splice pipe -> socket");
        }
        left -= size_t(w);
      }
    }
  }
  const double cpu = thread_cpu_seconds() - cpu0;
  if (pipefd[0] >= 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
  }
  ::close(ep);
  return cpu;
}

Result run(Method m, const Workload& w, double duration, int pipe_size) {
  int load_out, fwd_in, fwd_out, load_in;
  tcp_pair(load_out, fwd_in);
  tcp_pair(fwd_out, load_in);
  if (::fcntl(fwd_in, F_SETFL, ::fcntl(fwd_in, F_GETFL) | O_NONBLOCK) != 0) die("O_NONBLOCK");

  double cpu = 0;
  std::thread forwarder([&] {
    cpu = forward(m, fwd_in, fwd_out, pipe_size);
    ::shutdown(fwd_out, SHUT_WR);
  });

  uint64_t bytes = 0;
  std::vector<char> msg(w.size, 'x');
  std::vector<char> back(std::max(w.size, kChunk));
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(duration));
  if (w.load == Load::pingpong) {
    while (std::chrono::steady_clock::now() < end) {
      send_all(load_out, msg.data(), msg.size());
      if (!read_exact(load_in, back.data(), w.size)) die("forwarder ended early");
      bytes += w.size;
    }
    ::shutdown(load_out, SHUT_WR);
    while (::recv(load_in, back.data(), back.size(), 0) > 0) {
    }
  } else {
    std::atomic<uint64_t> received{0};
    std::thread reader([&] {
      for (;;) {
        ssize_t r = ::recv(load_in, back.data(), back.size(), 0);
        if (r <= 0) break;
        received.fetch_add(uint64_t(r), std::memory_order_relaxed);
      }
    });
    while (std::chrono::steady_clock::now() < end) send_all(load_out, msg.data(), msg.size());
    ::shutdown(load_out, SHUT_WR);
    reader.join();
    bytes = received.load();
  }
  forwarder.join();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (int fd : {load_out, fwd_in, fwd_out, load_in}) ::close(fd);

  Result r;
  const double msgs = double(bytes) / double(w.size);
  r.cpu_us_per_msg = msgs > 0 ? cpu * 1e6 / msgs : 0;
  r.msgs_per_s = msgs / wall;
  r.mb_per_s = double(bytes) / wall / 1e6;
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void usage(FILE* to) {
  std::fprintf(to,
               "usage: splice-forward [--rounds N] [--duration SECONDS] [--pipe-size BYTES]\n"
               "Forwards bytes between two loopback TCP connections with recv+send through a\n"
               "64 KiB buffer and with splice(2) through a pipe; prints the forwarder's CPU per\n"
               "message and MB/s for 64-byte and 64 KiB messages, and splice/copy ratios.\n"
               "  --rounds N          rounds per method and workload, alternating (default 5)\n"
               "  --duration SECONDS  per run (default 2)\n"
               "  --pipe-size BYTES   F_SETPIPE_SZ for the splice pipe (default: the kernel's)\n");
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  double duration = 2.0;
  int pipe_size = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "splice-forward: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a == "--rounds") {
      rounds = std::atoi(value("--rounds"));
    } else if (a == "--duration") {
      duration = std::atof(value("--duration"));
    } else if (a == "--pipe-size") {
      pipe_size = std::atoi(value("--pipe-size"));
    } else {
      std::fprintf(stderr, "splice-forward: unknown option %s\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (rounds < 1 || duration <= 0) {
    std::fprintf(stderr, "splice-forward: --rounds must be at least 1 and --duration above 0\n");
    return 2;
  }

  const Workload workloads[] = {
      {"pp64", Load::pingpong, 64},
      {"pp64k", Load::pingpong, 64 * 1024},
      {"bulk64k", Load::stream, 64 * 1024},
  };
  const char* names[] = {"copy", "splice"};
  std::printf("splice-forward: %d rounds x %.1f s, pipe size %s\n", rounds, duration,
              pipe_size ? std::to_string(pipe_size).c_str() : "default");
  for (const Workload& w : workloads) {
    std::vector<double> cpu[2], mbs[2], mps[2], ratio_cpu, ratio_mbs;
    for (int round = 0; round < rounds; ++round) {
      Result r[2];
      for (int k = 0; k < 2; ++k) {
        int m = (round % 2) ? 1 - k : k;  // who goes first alternates
        r[m] = run(Method(m), w, duration, pipe_size);
        std::printf("  %-8s round %d %-6s %12.0f msgs/s %9.1f MB/s %9.3f CPU us/msg\n", w.name,
                    round + 1, names[m], r[m].msgs_per_s, r[m].mb_per_s, r[m].cpu_us_per_msg);
        std::fflush(stdout);
      }
      for (int m = 0; m < 2; ++m) {
        cpu[m].push_back(r[m].cpu_us_per_msg);
        mbs[m].push_back(r[m].mb_per_s);
        mps[m].push_back(r[m].msgs_per_s);
      }
      ratio_cpu.push_back(r[1].cpu_us_per_msg / r[0].cpu_us_per_msg);
      ratio_mbs.push_back(r[1].mb_per_s / r[0].mb_per_s);
    }
    std::printf("%s medians: copy %.3f CPU us/msg %.1f MB/s | splice %.3f CPU us/msg %.1f MB/s\n",
                w.name, median(cpu[0]), median(mbs[0]), median(cpu[1]), median(mbs[1]));
    std::printf("%s splice/copy, median of per-round ratios: CPU per msg %.3f (range %.3f..%.3f), "
                "MB/s %.3f (range %.3f..%.3f)\n",
                w.name, median(ratio_cpu), *std::min_element(ratio_cpu.begin(), ratio_cpu.end()),
                *std::max_element(ratio_cpu.begin(), ratio_cpu.end()), median(ratio_mbs),
                *std::min_element(ratio_mbs.begin(), ratio_mbs.end()),
                *std::max_element(ratio_mbs.begin(), ratio_mbs.end()));
  }
  return 0;
}
