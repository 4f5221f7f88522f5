// HttpResponder: routing to the root or the built-in page, dotfiles, redirects, and
// finding (or making) the cache entry of the representation a request selects.
#include "http/http_responder.hpp"

#include <ctime>

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

// A path segment starting with '.' (".git", ".env"), but for ".well-known" as the first
// segment (RFC 8615). `path` is normalized: no leading '/', no "." or ".." segments.
bool is_hidden(std::string_view path) noexcept {
  size_t start = 0;
  if (path.substr(0, 12) == ".well-known/" || path == ".well-known") start = 12;
  for (size_t i = start; i < path.size(); ++i)
    if (path[i] == '.' && (i == 0 || path[i - 1] == '/')) return true;
  return false;
}

// Characters a Location path may carry as they are (RFC 3986 pchar and '/'): everything
// else is percent-encoded, so the value is one path whatever the decoded name holds.
bool location_safe(unsigned char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '-': case '.': case '_': case '~': case '!': case '$': case '&': case '\'':
    case '(': case ')': case '*': case '+': case ',': case ';': case '=': case ':':
    case '@': case '/':
      return true;
    default:
      return false;
  }
}

void append_encoded_path(Buffer& out, std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : path) {
    auto c = static_cast<unsigned char>(ch);
    if (location_safe(c)) {
      out.append(&ch, 1);
    } else {
      char e[3] = {'%', kHex[c >> 4], kHex[c & 15]};
      out.append(e, 3);
    }
  }
}

// A descriptor just opened, made shareable for the reply (none: nothing). Only when the
// path was opened (a cache miss or a revalidation), so the allocation is not per response.
SharedFd shared(Fd file) {
  if (!file) return nullptr;
  return std::make_shared<const Fd>(std::move(file));
}

}  // namespace

Result<std::shared_ptr<HttpResponder>> HttpResponder::create(const HttpOptions& options,
                                                            RootDirectory::Resolver resolver) {
  std::optional<RootDirectory> root;
  if (!options.root.empty()) {
    auto r = RootDirectory::open(options.root, resolver);
    if (!r) return r.error();
    root.emplace(std::move(*r));
  }
  return std::shared_ptr<HttpResponder>(new HttpResponder(options, std::move(root)));
}

HttpResponder::HttpResponder(const HttpOptions& options, std::optional<RootDirectory> root)
    : Responder(options),
      root_(std::move(root)),
      cache_(options.cache_file_max, options.cache_max_bytes) {
  builtin_headers_ = "Content-Type: text/html; charset=utf-8\r\nContent-Length: " +
                     std::to_string(kBuiltinPage.size()) + "\r\n";
  path_.reserve(256);
  key_.reserve(256);
  sibling_.reserve(256);
  scratch_.reserve(256);
}

HttpResponder::Reply HttpResponder::builtin_page(const Request& req, Buffer& out) {
  write_head(200, req.keep_alive, req.version_minor, out);
  out.append(builtin_headers_);
  out.append("\r\n");
  if (req.method != Method::head) out.append(kBuiltinPage);
  Reply r;
  r.status = 200;
  r.close = !req.keep_alive;
  return r;
}

// The Location is made from the normalized path, never from the path as sent: a request
// for "//evil.example/../sub" must not send a browser to another host. A normalized path
// has no empty segment, so "/" + it never starts with "//"; a '\' is encoded.
HttpResponder::Reply HttpResponder::redirect_to_directory(const Request& req, Buffer& out) {
  write_head(301, req.keep_alive, req.version_minor, out);
  out.append("Location: /");
  append_encoded_path(out, path_);
  out.append("/");
  if (!req.query.empty()) {
    out.append("?");
    out.append(req.query);
  }
  out.append("\r\nContent-Length: 0\r\n\r\n");
  Reply r;
  r.status = 301;
  r.close = !req.keep_alive;
  return r;
}

HttpResponder::Reply HttpResponder::respond(const Request& req, TimePoint now, Buffer& out) {
  if (req.method != Method::get && req.method != Method::head)
    return fail(req.method == Method::unknown ? 501 : 405, {}, req, out);
  if (req.path.empty()) return fail(400, "'*' is a target for OPTIONS only", req, out);
  Reply reply;
  if (root_ && req.path.size() > 1 && is_plain_path(req.path)) {
    // The common case: a plain path is its own cache key less its leading '/' (what
    // normalize_path and the key below would make of it), so a hit needs no copy. A plain
    // path has no segment starting with '.', so no dotfile gets here.
    CachedFile* cached = cache_.find(req.path.substr(1));
    if (cached && now - cached->checked < options_.cache_revalidate) {
      Fd none;
      CachedFile* rep = cached->siblings ? choose_representation(*cached, req, now, none) : cached;
      if (serve(*rep, shared(std::move(none)), req, now, out, reply)) {
        ++stats_.cache_hits;
        return finish(rep, std::move(reply));
      }
    }
  }
  PathResult p = normalize_path(req.path, path_);
  if (p.http_status) return fail(p.http_status, p.reason, req, out);
  if (!root_) {
    if (!path_.empty() && path_ != "index.html") return fail(404, {}, req, out);
    return builtin_page(req, out);
  }
  if (!options_.dotfiles && is_hidden(path_)) return fail(404, {}, req, out);

  key_.assign(path_);
  if (p.directory) key_.push_back('/');
  // A large file that changed on disk after it was cached is found out when it is opened
  // to be sent; the entry is then made anew, once.
  const size_t path_size = path_.size();  // lookup() appends the index to a directory's
  for (int attempt = 0; attempt < 2; ++attempt) {
    path_.resize(path_size);
    uint16_t status = 0;
    std::string_view reason;
    Fd file;
    CachedFile* entry = lookup(key_, p.directory, now, status, reason, file);
    if (!entry) {
      if (status == 0) continue;  // it changed while being read: look again
      if (status == 301) return redirect_to_directory(req, out);
      return fail(status, reason, req, out);
    }
    CachedFile* rep = choose_representation(*entry, req, now, file);
    if (serve(*rep, shared(std::move(file)), req, now, out, reply)) return finish(rep, std::move(reply));
  }
  return fail(503, "the file keeps changing; try again", req, out);
}

// An entry too large for the cache lives only for the request it was made for.
HttpResponder::Reply HttpResponder::finish(const CachedFile* rep, Reply reply) {
  if (rep == &uncached_) uncached_ = CachedFile{};
  return reply;
}

CachedFile* HttpResponder::lookup(std::string_view key, bool directory, TimePoint now,
                                  uint16_t& status, std::string_view& reason, Fd& file) {
  CachedFile* cached = cache_.find(key);
  if (cached && now - cached->checked < options_.cache_revalidate) {
    ++stats_.cache_hits;
    return cached;
  }
  OpenedFile f = root_->open_file(path_, scratch_);
  if (!f.http_status && !S_ISDIR(f.st.st_mode) && directory) {
    // "/file.txt/" names a directory that is not there (open(2) would say ENOTDIR).
    f.http_status = 404;
  }
  if (!f.http_status && S_ISDIR(f.st.st_mode)) {
    if (!directory) {
      status = 301;
      return nullptr;
    }
    if (!path_.empty()) path_.push_back('/');
    path_.append(options_.index);
    f = root_->open_file(path_, scratch_);
    if (f.http_status == 404) {
      f.http_status = 403;
      f.reason = "directory has no index file";
    } else if (!f.http_status && !S_ISREG(f.st.st_mode)) {
      f.http_status = 403;
      f.reason = {};
    }
  }
  if (!f.http_status && !options_.dotfiles && leads_to_hidden(f)) {
    f.http_status = 404;
    f.reason = {};
  }
  if (f.http_status) {
    if (cached) cache_.erase(key);
    status = f.http_status;
    reason = f.http_status == 403 && !f.reason.empty() && f.reason != "forbidden" ? f.reason
                                                                                  : std::string_view{};
    return nullptr;
  }
  if (cached && cached->id == FileIdentity::of(f.st) && cached->disk_path == path_ &&
      cached->siblings == siblings_of(path_, f.st)) {
    cached->checked = now;
    file = std::move(f.fd);
    return cached;
  }
  return make_entry(key, path_, Coding::identity, content_type_for(path_), f, now, file);
}

// The file opened resolves (through symlinks) to a path with a segment starting with '.':
// a link to .git is no way around the dotfile rule. Where the opened file's path cannot
// be had, the request path's check is all there is.
bool HttpResponder::leads_to_hidden(const OpenedFile& f) {
  if (!root_->relative_path_of(f.fd.get(), scratch_)) return false;
  return is_hidden(scratch_);
}

// A sibling counts when it is a regular file not older than the original: a stale .gz
// left behind by an edit of the original is not served in its place.
uint8_t HttpResponder::siblings_of(std::string_view disk_path, const struct stat& original) {
  if (!options_.precompressed) return 0;
  uint8_t found = 0;
  for (Coding c : {Coding::br, Coding::gzip}) {
    sibling_.assign(disk_path);
    sibling_.append(coding_suffix(c));
    OpenedFile s = root_->open_file(sibling_, scratch_);
    if (s.http_status || !S_ISREG(s.st.st_mode)) continue;
    if (FileIdentity::of(s.st).mtime.tv_sec < FileIdentity::of(original).mtime.tv_sec) continue;
    found |= coding_bit(c);
  }
  return found;
}

CachedFile* HttpResponder::choose_representation(CachedFile& identity, const Request& req,
                                                 TimePoint now, Fd& file) {
  if (!identity.siblings || !req.accept_encoding.present()) return &identity;
  Coding c;
  if (req.accept_encoding.count == 1) {
    c = choose_coding(req.accept_encoding.value, true, identity.siblings);
  } else {  // several lines are one list (RFC 9110 §5.3)
    scratch_.clear();
    req.for_each_value("accept-encoding", [this](std::string_view v) {
      if (!scratch_.empty()) scratch_.push_back(',');
      scratch_.append(v);
    });
    c = choose_coding(scratch_, true, identity.siblings);
  }
  if (c == Coding::identity) return &identity;
  // Keys of siblings start with a byte no request path can hold, so "/app.js.gz" asked
  // for by name (served as itself, without Content-Encoding) is a different entry.
  sibling_.assign(1, '\x01');
  sibling_.append(identity.disk_path);
  sibling_.append(coding_suffix(c));
  CachedFile* cached = cache_.find(sibling_);
  if (cached && now - cached->checked < options_.cache_revalidate) {
    file.reset();  // a descriptor opened for the original is not this one's
    return cached;
  }
  std::string key = sibling_;
  std::string disk_path = key.substr(1);
  std::string_view type = content_type_for(identity.disk_path);
  OpenedFile f = root_->open_file(disk_path, scratch_);
  if (f.http_status || !S_ISREG(f.st.st_mode) || (!options_.dotfiles && leads_to_hidden(f))) {
    if (cached) cache_.erase(key);
    return &identity;  // gone since the original was checked, or not to be served
  }
  if (cached && cached->id == FileIdentity::of(f.st)) {
    cached->checked = now;
    file = std::move(f.fd);
    return cached;
  }
  CachedFile* made = make_entry(key, disk_path, c, type, f, now, file);
  return made ? made : &identity;  // changed while being read: the original this time
}

}  // namespace netloop::http
