// Micro-benchmarks of the HTTP request path in user space: parsing a request head (as
// wrk, curl and a browser send them) and the whole respond step from a cached file.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "http/http_responder.hpp"
#include "http/request_parser.hpp"
#include "http/request_path.hpp"

using namespace netloop;
using namespace netloop::http;

namespace {

constexpr std::string_view kWrk = "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
constexpr std::string_view kCurl =
    "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n\r\n";
constexpr std::string_view kBrowser =
    "GET /static/css/site.css?v=3 HTTP/1.1\r\nHost: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: text/css,*/*;q=0.1\r\nAccept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n"
    "Referer: https://www.example.com/\r\nCookie: session=0123456789abcdef0123456789abcdef\r\n"
    "Sec-Fetch-Dest: style\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Site: same-origin\r\n\r\n";

void BM_ParseRequest(benchmark::State& state, std::string_view raw) {
  RequestParser parser;
  Request req;
  for (auto _ : state) {
    parser.reset();
    ParseResult r = parser.parse(raw, req);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(req.path);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(raw.size()));
  state.SetLabel("ns per request head");
}
BENCHMARK_CAPTURE(BM_ParseRequest, wrk, kWrk);
BENCHMARK_CAPTURE(BM_ParseRequest, curl, kCurl);
BENCHMARK_CAPTURE(BM_ParseRequest, browser, kBrowser);

void BM_NormalizePath(benchmark::State& state) {
  std::string out;
  for (auto _ : state) {
    PathResult r = normalize_path("/static/css/../css/site%2Dv2.css", out);
    benchmark::DoNotOptimize(r);
  }
  state.SetLabel("ns per path");
}
BENCHMARK(BM_NormalizePath);

// Parse + respond from the cache into a staging buffer: the user-space work of one
// keep-alive GET of a small file, without the two syscalls.
void BM_RespondCached(benchmark::State& state) {
  auto dir = std::filesystem::temp_directory_path() / "netloop-bench-http";
  std::filesystem::create_directories(dir);
  if (FILE* f = std::fopen((dir / "index.html").c_str(), "w")) {
    std::fputs("hello, world\n", f);
    std::fclose(f);
  }
  HttpOptions options;
  options.root = dir.string();
  options.cache_revalidate = seconds(3600);
  auto responder = HttpResponder::create(options);
  if (!responder) {
    state.SkipWithError("cannot open the root");
    return;
  }
  HttpResponder& r = **responder;
  RequestParser parser;
  Request& req = r.request();
  Buffer& out = r.staging();
  TimePoint now{};
  for (auto _ : state) {
    out.clear();
    parser.reset();
    parser.parse(kWrk, req);
    auto reply = r.respond(req, now, out);
    benchmark::DoNotOptimize(reply.status);
  }
  std::filesystem::remove_all(dir);
  state.SetLabel("ns per request");
}
BENCHMARK(BM_RespondCached);

}  // namespace

BENCHMARK_MAIN();
