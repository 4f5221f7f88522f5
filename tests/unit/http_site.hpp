// Shared by the HTTP unit tests: a temporary served root, a responder on it, handlers on
// MemoryConnections, and a splitter for the responses they send.
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include "http/http_handler.hpp"
#include "http/http_responder.hpp"
#include "netloop/testing/memory_connection.hpp"

namespace http_test {

using namespace netloop;
using namespace netloop::http;
using netloop::testing::MemoryConnection;
using netloop::testing::MemoryOptions;

// A temporary root with a few files; removed at the end of the test.
struct Site {
  std::filesystem::path dir;
  Site() {
    char tmpl[] = "/tmp/netloop-http-handler-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    write("index.html", "hello, world\n");
    write("a.txt", "AAAA");
    write("b.txt", "BB");
    write("big.bin", std::string(300 * 1024, 'x'));
  }
  ~Site() { std::filesystem::remove_all(dir); }
  void write(const std::string& name, const std::string& content) const {
    std::filesystem::create_directories((dir / name).parent_path());
    FILE* f = std::fopen((dir / name).c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fwrite(content.data(), 1, content.size(), f);
    std::fclose(f);
  }
};

inline std::shared_ptr<HttpResponder> responder_for(const Site* site, HttpOptions o = {}) {
  if (site) o.root = site->dir.string();
  auto r = HttpResponder::create(o);
  REQUIRE(r.ok());
  return *r;
}

inline std::unique_ptr<MemoryConnection> connection_of(const StreamHandlerFactory& factory,
                                                       MemoryOptions mo = {}) {
  auto c = std::make_unique<MemoryConnection>(factory(), mo);
  c->open();
  return c;
}

inline std::unique_ptr<MemoryConnection> connection(std::shared_ptr<HttpResponder> r,
                                                    MemoryOptions mo = {}) {
  return connection_of(r->factory(), mo);
}

// Splits a stream of responses: each is a head and a body of its Content-Length.
struct Response {
  int status = 0;
  std::string head;
  std::string body;

  // A field's value ("" when absent: check has() to tell an empty one).
  std::string header(std::string_view name) const {
    std::string needle = "\r\n" + std::string(name) + ": ";
    size_t at = head.find(needle);
    if (at == std::string::npos) return {};
    at += needle.size();
    return head.substr(at, head.find("\r\n", at) - at);
  }
  bool has(std::string_view name) const {
    return head.find("\r\n" + std::string(name) + ": ") != std::string::npos;
  }
};
inline std::vector<Response> split_responses(std::string_view s, bool head_only = false) {
  std::vector<Response> out;
  while (!s.empty()) {
    size_t end = s.find("\r\n\r\n");
    REQUIRE(end != std::string_view::npos);
    Response r;
    r.head = std::string(s.substr(0, end + 4));
    r.status = std::stoi(r.head.substr(9, 3));
    size_t cl = r.head.find("Content-Length: ");
    size_t len = cl == std::string::npos ? 0 : std::stoul(r.head.substr(cl + 16));
    s.remove_prefix(end + 4);
    if (!head_only) {
      REQUIRE(s.size() >= len);
      r.body = std::string(s.substr(0, len));
      s.remove_prefix(len);
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace http_test
