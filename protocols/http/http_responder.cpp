// HttpResponder: routing to the root or the built-in page, the cache, and response heads.
#include "http/http_responder.hpp"

#include <charconv>
#include <ctime>

#include "http/http_handler.hpp"
#include "http/mime_types.hpp"
#include "http/request_path.hpp"
#include "http/status.hpp"

namespace netloop::http {
namespace {

constexpr std::string_view kBuiltinPage =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>netloop</title></head>\n"
    "<body><h1>netloop</h1>\n"
    "<p>This page is served by netloop-demo's built-in HTTP responder.\n"
    "Start it with <code>--root DIR</code> to serve a directory.</p>\n"
    "</body></html>\n";

void append_number(Buffer& out, uint64_t n) {
  char num[24];
  auto [end, ec] = std::to_chars(num, num + sizeof num, n);
  out.append(num, size_t(end - num));
}

}  // namespace

Result<std::shared_ptr<HttpResponder>> HttpResponder::create(const HttpOptions& options) {
  std::optional<RootDirectory> root;
  if (!options.root.empty()) {
    auto r = RootDirectory::open(options.root);
    if (!r) return r.error();
    root.emplace(std::move(*r));
  }
  return std::shared_ptr<HttpResponder>(new HttpResponder(options, std::move(root)));
}

HttpResponder::HttpResponder(const HttpOptions& options, std::optional<RootDirectory> root)
    : options_(options),
      root_(std::move(root)),
      cache_(options.cache_file_max, options.cache_max_bytes),
      staging_(16 * 1024) {
  append_file_headers(builtin_headers_, "text/html; charset=utf-8", kBuiltinPage.size(),
                      std::time(nullptr));
  path_.reserve(256);
  key_.reserve(256);
  scratch_.reserve(256);
}

StreamHandlerFactory HttpResponder::factory() {
  std::shared_ptr<HttpResponder> self = shared_from_this();
  return [self] { return std::make_unique<HttpHandler>(self); };
}

void HttpResponder::write_head(uint16_t status, bool keep_alive, uint8_t version_minor,
                               Buffer& out) {
  ++stats_.responses[status / 100 < 6 ? status / 100 : 5];
  append_response_head(out, status, date_.now(), keep_alive, version_minor);
}

void HttpResponder::write_error(uint16_t status, std::string_view detail, bool head,
                                bool keep_alive, uint8_t version_minor, Buffer& out) {
  write_head(status, keep_alive, version_minor, out);
  std::string_view line = status_line(status);  // "HTTP/1.1 404 Not Found\r\n"
  std::string_view text = line.substr(9, line.size() - 11);
  if (status == 405) out.append("Allow: GET, HEAD\r\n");
  out.append("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  size_t length = text.size() + 1 + (detail.empty() ? 0 : detail.size() + 2);
  append_number(out, length);
  out.append("\r\n\r\n");
  if (head) return;
  out.append(text);
  if (!detail.empty()) {
    out.append(": ");
    out.append(detail);
  }
  out.append("\n");
}

HttpResponder::Reply HttpResponder::fail(uint16_t status, std::string_view detail,
                                         const Request& req, Buffer& out) {
  write_error(status, detail, req.method == Method::head, req.keep_alive, req.version_minor, out);
  return {status, {}, 0, !req.keep_alive};
}

HttpResponder::Reply HttpResponder::serve_cached(CachedFile& f, const Request& req,
                                                 TimePoint now, Buffer& out) {
  if (req.keep_alive && req.version_minor == 1) {
    // The common case: the prepared response, its Date refreshed once per second.
    std::string_view date = date_.at(now);
    if (f.response.empty()) {  // once per cached file
      Buffer head;
      write_head(200, true, 1, head);
      stats_.responses[2].sub();  // counted below, per response
      f.response.assign(head.view());
      f.date_at = f.response.find("Date: ") + 6;
      f.response.append(f.headers);
      f.response.append("\r\n");
      f.response_head = f.response.size();
      f.response.append(f.body);
      f.date_second = date_.second();
    } else if (f.date_second != date_.second()) {
      f.response.replace(f.date_at, date.size(), date);
      f.date_second = date_.second();
    }
    ++stats_.responses[2];
    out.append(f.response.data(), req.method == Method::head ? f.response_head : f.response.size());
    return {200, {}, 0, false};
  }
  write_head(200, req.keep_alive, req.version_minor, out);
  out.append(f.headers);
  out.append("\r\n");
  if (req.method != Method::head) out.append(f.body);
  return {200, {}, 0, !req.keep_alive};
}

HttpResponder::Reply HttpResponder::redirect_to_directory(const Request& req, Buffer& out) {
  write_head(301, req.keep_alive, req.version_minor, out);
  out.append("Location: ");
  out.append(req.path);  // as sent: already percent-encoded, and checked by the parser
  out.append("/");
  if (!req.query.empty()) {
    out.append("?");
    out.append(req.query);
  }
  out.append("\r\nContent-Length: 0\r\n\r\n");
  return {301, {}, 0, !req.keep_alive};
}

HttpResponder::Reply HttpResponder::respond(const Request& req, TimePoint now, Buffer& out) {
  if (req.method != Method::get && req.method != Method::head)
    return fail(req.method == Method::unknown ? 501 : 405, {}, req, out);
  if (req.path.empty()) return fail(400, "'*' is a target for OPTIONS only", req, out);
  if (root_ && req.path.size() > 1 && is_plain_path(req.path)) {
    // The common case: a plain path is its own cache key less its leading '/' (what
    // normalize_path and the key below would make of it), so a hit needs no copy.
    CachedFile* cached = cache_.find(req.path.substr(1));
    if (cached && now - cached->checked < options_.cache_revalidate) {
      ++stats_.cache_hits;
      return serve_cached(*cached, req, now, out);
    }
  }
  PathResult p = normalize_path(req.path, path_);
  if (p.http_status) return fail(p.http_status, p.reason, req, out);

  if (!root_) {
    if (!path_.empty() && path_ != "index.html") return fail(404, {}, req, out);
    write_head(200, req.keep_alive, req.version_minor, out);
    out.append(builtin_headers_);
    out.append("\r\n");
    if (req.method != Method::head) out.append(kBuiltinPage);
    return {200, {}, 0, !req.keep_alive};
  }

  key_.assign(path_);
  if (p.directory) key_.push_back('/');
  CachedFile* cached = cache_.find(key_);
  if (cached && now - cached->checked < options_.cache_revalidate) {
    ++stats_.cache_hits;
    return serve_cached(*cached, req, now, out);
  }

  OpenedFile f = root_->open_file(path_, scratch_);
  if (f.http_status) {
    if (cached) cache_.erase(key_);
    return fail(f.http_status, {}, req, out);
  }
  if (!S_ISDIR(f.st.st_mode) && p.directory) {
    // "/file.txt/" names a directory that is not there (open(2) would say ENOTDIR).
    return fail(404, {}, req, out);
  }
  if (S_ISDIR(f.st.st_mode)) {
    if (!p.directory) return redirect_to_directory(req, out);
    if (!path_.empty()) path_.push_back('/');
    path_.append(options_.index);
    f = root_->open_file(path_, scratch_);
    if (f.http_status == 404) return fail(403, "directory has no index file", req, out);
    if (f.http_status) return fail(f.http_status, {}, req, out);
    if (!S_ISREG(f.st.st_mode)) return fail(403, {}, req, out);
  }
  if (cached && cached->same_file(f.st)) {
    cached->checked = now;
    return serve_cached(*cached, req, now, out);
  }
  std::string_view type = content_type_for(path_);
  if (uint64_t(f.st.st_size) <= cache_.max_file()) {
    if (CachedFile* fresh = cache_.insert(key_, f.fd.get(), f.st, type, now))
      return serve_cached(*fresh, req, now, out);
    // Not cached (it changed while being read, or does not fit): sendfile copes.
  }
  write_head(200, req.keep_alive, req.version_minor, out);
  std::string headers;  // large files only: the allocation is noise next to the transfer
  append_file_headers(headers, type, uint64_t(f.st.st_size), mtime_of(f.st).tv_sec);
  out.append(headers);
  out.append("\r\n");
  if (req.method == Method::head) return {200, {}, 0, !req.keep_alive};
  ++stats_.files_sent;
  return {200, std::move(f.fd), uint64_t(f.st.st_size), !req.keep_alive};
}

}  // namespace netloop::http
