// HttpResponder's file responses: making a representation's entry (validators, fields,
// prepared responses) and answering a request for it: 304 and 412 from the preconditions,
// 206 and 416 from a Range, else 200. RFC 9110 §13 and §14.
#include <algorithm>
#include <charconv>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ctime>
#include <random>

#include "http/conditional.hpp"
#include "http/http_responder.hpp"
#include "http/status.hpp"

namespace netloop::http {
namespace {

template <class Out>
void append_number(Out& out, uint64_t n) {
  char num[24];
  auto [end, ec] = std::to_chars(num, num + sizeof num, n);
  out.append(std::string_view(num, size_t(end - num)));
}

void append_date_line(std::string& out, std::string_view name, time_t t) {
  char date[kHttpDateSize];
  format_http_date(t, date);
  out.append(name);
  out.append(date, sizeof date);
  out.append("\r\n");
}

// A strong entity-tag from what identifies the contents (RFC 9110 §8.8.3): inode, size,
// both times to the nanosecond and the coding, mixed into 64 bits. The same file gets the
// same tag on every loop and after a restart; any edit gets another.
std::string make_etag(const FileIdentity& id, Coding coding) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](uint64_t v) {
    h ^= v;
    h *= 0x100000001b3ull;
    h ^= h >> 29;
  };
  mix(uint64_t(id.dev));
  mix(uint64_t(id.ino));
  mix(uint64_t(id.size));
  mix(uint64_t(id.mtime.tv_sec));
  mix(uint64_t(id.mtime.tv_nsec));
  mix(uint64_t(id.ctime.tv_sec));
  mix(uint64_t(id.ctime.tv_nsec));
  mix(uint64_t(coding));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string tag(18, '"');
  for (int i = 0; i < 16; ++i) tag[size_t(1 + i)] = kHex[(h >> (60 - 4 * i)) & 15];
  return tag;
}

// The head of a keep-alive HTTP/1.1 response, its Date's place noted.
void prepare_head(PreparedResponse& r, uint16_t status, std::string_view date) {
  append_response_head(r.text, status, date, true, 1);
  r.date_at = r.text.find("Date: ") + 6;
}

// Ranges up to this size are read into the response rather than sent from a descriptor
// held until the peer reads them: a client asking for many tiny ranges, pipelined and
// never reading, would otherwise hold a descriptor per range. Larger ones count in the
// connection's pending bytes, and its high-water mark bounds how many can queue.
constexpr uint64_t kReadRangeMax = 16 * 1024;

void append_content_range(Buffer& out, const ByteRange& r, uint64_t length) {
  out.append("Content-Range: bytes ");
  append_number(out, r.first);
  out.append("-");
  append_number(out, r.last);
  out.append("/");
  append_number(out, length);
  out.append("\r\n");
}

}  // namespace

CachedFile* HttpResponder::make_entry(std::string_view key, std::string_view disk_path,
                                      Coding coding, std::string_view content_type,
                                      OpenedFile& f, TimePoint now, Fd& file) {
  CachedFile e;
  e.id = FileIdentity::of(f.st);
  e.coding = coding;
  e.disk_path.assign(disk_path);
  e.siblings = coding == Coding::identity ? siblings_of(disk_path, f.st) : 0;
  e.etag = make_etag(e.id, coding);
  // Last-Modified is never later than the Date sent with it (RFC 9110 §8.8.2.1).
  const time_t wall = std::time(nullptr);
  e.last_modified = std::min<time_t>(e.id.mtime.tv_sec, wall);
  e.last_modified_strong = e.id.mtime.tv_sec < wall;
  e.type_line.append("Content-Type: ").append(content_type).append("\r\n");
  if (coding != Coding::identity) e.meta_lines.append("Content-Encoding: ").append(coding_name(coding)).append("\r\n");
  append_date_line(e.meta_lines, "Last-Modified: ", e.last_modified);
  e.meta_lines.append("Accept-Ranges: bytes\r\n");
  e.validator_lines.append("ETag: ").append(e.etag).append("\r\n");
  if (coding != Coding::identity || e.siblings) e.validator_lines.append("Vary: Accept-Encoding\r\n");
  if (!options_.cache_control.empty())
    e.validator_lines.append("Cache-Control: ").append(options_.cache_control).append("\r\n");

  std::string_view date = date_.now();
  prepare_head(e.ok, 200, date);
  e.ok.date_second = date_.second();
  e.ok.text.append(e.type_line).append(e.meta_lines).append(e.validator_lines);
  e.ok.text.append("Content-Length: ");
  append_number(e.ok.text, e.length());
  e.ok.text.append("\r\n\r\n");
  e.ok.head = e.ok.text.size();
  if (e.length() <= cache_.max_file()) {
    // Read in now. A file that changed while being read has headers that no longer fit
    // it: no entry, and the caller looks again.
    if (!read_whole_file(f.fd.get(), size_t(e.length()), e.ok.text)) return nullptr;
    e.in_memory = true;
  } else if (cache_.can_keep()) {
    Fd copy(::fcntl(f.fd.get(), F_DUPFD_CLOEXEC, 0));
    if (copy) e.kept = std::make_shared<const Fd>(std::move(copy));
  }
  e.ok.text.shrink_to_fit();
  e.checked = now;
  file = std::move(f.fd);
  if (CachedFile* cached = cache_.insert(key, std::move(e))) return cached;
  uncached_ = std::move(e);  // insert() leaves it whole when refusing it
  return &uncached_;
}

// The descriptor to send `rep` from, checked to be the file the entry describes.
SharedFd HttpResponder::open_unchanged(CachedFile& rep, TimePoint now, uint16_t& status) {
  if (rep.kept) {
    // The descriptor kept open, shared with the response (no dup, no close). An edit in
    // place, or a rename over the path (unlinking the old inode moves its ctime), shows
    // in fstat: then the path is opened anew. Checked once per loop iteration (`now` is
    // the loop's clock, read once per iteration): under load one fstat serves every
    // request for this file in the batch, and nothing can tell apart an edit made during
    // the batch from one made just after it.
    if (rep.kept_seen == now) return rep.kept;
    struct stat st {};
    if (::fstat(rep.kept->get(), &st) == 0 && FileIdentity::of(st) == rep.id) {
      rep.kept_seen = now;
      return rep.kept;
    }
  }
  OpenedFile f = root_->open_file(rep.disk_path, scratch_);
  if (f.http_status) {
    status = f.http_status;
    return {};
  }
  if (!S_ISREG(f.st.st_mode) || !(FileIdentity::of(f.st) == rep.id)) {
    status = 0;  // changed: the caller marks the entry due and looks again
    return {};
  }
  return std::make_shared<const Fd>(std::move(f.fd));
}

std::string HttpResponder::boundary() {
  if (boundaries_ == 0) boundary_seed_ = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
  uint64_t v = boundary_seed_ ^ (++boundaries_ * 0x9e3779b97f4a7c15ull);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string b = "netloop-";
  for (int i = 0; i < 16; ++i) b.push_back(kHex[(v >> (60 - 4 * i)) & 15]);
  return b;
}

void HttpResponder::write_not_modified(CachedFile& rep, const Request& req, TimePoint now,
                                       Buffer& out) {
  ++stats_.not_modified;
  if (req.keep_alive && req.version_minor == 1) {
    std::string_view date = date_.at(now);
    if (rep.not_modified.empty()) {
      size_t before = rep.held_bytes();
      prepare_head(rep.not_modified, 304, date);
      rep.not_modified.text.append(rep.validator_lines).append("\r\n");
      rep.not_modified.text.shrink_to_fit();
      rep.not_modified.head = rep.not_modified.text.size();
      if (&rep != &uncached_) cache_.grew(rep, before);
    }
    rep.not_modified.refresh(date, date_.second());
    ++stats_.responses[3];
    out.append(rep.not_modified.text);
    return;
  }
  write_head(304, req.keep_alive, req.version_minor, out);
  out.append(rep.validator_lines);
  out.append("\r\n");
}

bool HttpResponder::serve(CachedFile& rep, SharedFd file, const Request& req, TimePoint now,
                          Buffer& out, Reply& reply) {
  reply.close = !req.keep_alive;
  const Validators v{rep.etag, rep.last_modified, rep.last_modified_strong};
  if (req.if_match.present() || req.if_none_match.present() || req.if_modified_since.present() ||
      req.if_unmodified_since.present()) {
    Precondition pc = evaluate_preconditions(req, v);
    if (pc == Precondition::not_modified) {
      write_not_modified(rep, req, now, out);
      reply.status = 304;
      return true;
    }
    if (pc == Precondition::failed) {
      // Which tag was compared depended on Accept-Encoding: a cache must know that too.
      bool vary = rep.coding != Coding::identity || rep.siblings;
      reply = fail(412, {}, req, out, vary ? "Vary: Accept-Encoding\r\n" : std::string_view{});
      return true;
    }
  }
  // Range is defined for GET only (RFC 9110 §14.2); a repeated Range field is invalid and
  // so ignored, like an If-Range that does not match.
  if (req.range.count == 1 && req.method == Method::get && if_range_allows(req, v))
    return serve_range(rep, std::move(file), req, now, out, reply);
  return serve_whole(rep, std::move(file), req, now, out, reply);
}

bool HttpResponder::serve_range(CachedFile& rep, SharedFd file, const Request& req, TimePoint now,
                                Buffer& out, Reply& reply) {
  const RangeSet ranges = parse_range(req.range.value, rep.length());
  if (ranges.kind == RangeSet::Kind::ignore) return serve_whole(rep, std::move(file), req, now, out, reply);
  if (ranges.kind == RangeSet::Kind::unsatisfiable) {
    write_head(416, req.keep_alive, req.version_minor, out);
    out.append("Content-Range: bytes */");
    append_number(out, rep.length());
    out.append("\r\n");
    out.append(rep.validator_lines);
    static constexpr std::string_view kBody = "Range Not Satisfiable\n";
    out.append("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    append_number(out, kBody.size());
    out.append("\r\n\r\n");
    out.append(kBody);
    reply.status = 416;
    return true;
  }
  if (!rep.in_memory && !file && !open_body(rep, file, req, now, out, reply)) return false;
  if (reply.status) return true;  // could not open it: answered
  if (ranges.count > 1) {
    if (!write_multipart(rep, ranges, file, req, out, reply)) {
      rep.checked = now - options_.cache_revalidate - seconds(1);  // shorter than it was
      return false;
    }
    if (reply.status) return true;
    // Not smaller than the whole: the whole it is (RFC 9110 §14.2).
    return serve_whole(rep, std::move(file), req, now, out, reply);
  }
  const ByteRange& r = ranges.ranges[0];
  const bool read_in = !rep.in_memory && r.length() <= kReadRangeMax;
  if (read_in) {
    range_bytes_.clear();
    if (!read_file_range(file->get(), r.first, r.length(), range_bytes_)) {
      rep.checked = now - options_.cache_revalidate - seconds(1);  // shorter than it was
      return false;
    }
  }
  ++stats_.partial;
  write_head(206, req.keep_alive, req.version_minor, out);
  out.append(rep.type_line);
  out.append(rep.meta_lines);
  out.append(rep.validator_lines);
  append_content_range(out, r, rep.length());
  out.append("Content-Length: ");
  append_number(out, r.length());
  out.append("\r\n\r\n");
  reply.status = 206;
  if (rep.in_memory) {
    out.append(rep.body().substr(size_t(r.first), size_t(r.length())));
  } else if (read_in) {
    out.append(range_bytes_);
  } else {
    ++stats_.files_sent;
    reply.file = std::move(file);
    reply.file_offset = r.first;
    reply.file_length = r.length();
  }
  return true;
}

// The descriptor to send `rep` from, when the entry holds no body: false when the file
// changed on disk (the entry is then due for a check, which makes it anew); a file that
// cannot be opened any more is answered here with its error (reply.status set).
bool HttpResponder::open_body(CachedFile& rep, SharedFd& file, const Request& req, TimePoint now,
                              Buffer& out, Reply& reply) {
  uint16_t status = 0;
  file = open_unchanged(rep, now, status);
  if (file) return true;
  if (status) {
    reply = fail(status, {}, req, out);
    return true;
  }
  rep.checked = now - options_.cache_revalidate - seconds(1);
  return false;
}

bool HttpResponder::serve_whole(CachedFile& rep, SharedFd file, const Request& req, TimePoint now,
                                Buffer& out, Reply& reply) {
  const bool head = req.method == Method::head;
  const bool body_from_disk = !head && !rep.in_memory;
  if (body_from_disk && !file) {
    if (!open_body(rep, file, req, now, out, reply)) return false;
    if (reply.status) return true;
  }
  reply.status = 200;
  if (req.keep_alive && req.version_minor == 1) {
    // The common case: the prepared response, its Date refreshed once per second.
    rep.ok.refresh(date_.at(now), date_.second());
    ++stats_.responses[2];
    out.append(rep.ok.text.data(), head ? rep.ok.head : rep.ok.text.size());
  } else {
    write_head(200, req.keep_alive, req.version_minor, out);
    out.append(rep.type_line);
    out.append(rep.meta_lines);
    out.append(rep.validator_lines);
    out.append("Content-Length: ");
    append_number(out, rep.length());
    out.append("\r\n\r\n");
    if (rep.in_memory && !head) out.append(rep.body());
  }
  if (body_from_disk) {
    ++stats_.files_sent;
    reply.file = std::move(file);
    reply.file_offset = 0;
    reply.file_length = rep.length();
  }
  return true;
}

// multipart/byteranges (RFC 9110 §14.6): each part names its range; the whole is sent
// instead (reply.status left 0) when the parts would not be smaller than the file. False
// when the file turned out shorter than its entry says (nothing written then).
bool HttpResponder::write_multipart(CachedFile& rep, const RangeSet& ranges, SharedFd& file,
                                    const Request& req, Buffer& out, Reply& reply) {
  std::string b = boundary();
  std::vector<FilePart> parts(ranges.count);
  uint64_t total = 0;
  for (size_t i = 0; i < ranges.count; ++i) {
    const ByteRange& r = ranges.ranges[i];
    std::string& t = parts[i].text;
    if (i > 0) t.append("\r\n");
    t.append("--").append(b).append("\r\n").append(rep.type_line);
    t.append("Content-Range: bytes ");
    append_number(t, r.first);
    t.append("-");
    append_number(t, r.last);
    t.append("/");
    append_number(t, rep.length());
    t.append("\r\n\r\n");
    parts[i].offset = r.first;
    parts[i].length = r.length();
    total += t.size() + r.length();
  }
  std::string tail = "\r\n--" + b + "--\r\n";
  total += tail.size();
  if (total >= rep.length()) return true;
  // From disk, small parts are read in now (no descriptor held for them); large ones go
  // out with sendfile, all sharing the one descriptor.
  bool any_from_disk = false;
  if (!rep.in_memory) {
    for (auto& p : parts) {
      if (p.length > kReadRangeMax) {
        any_from_disk = true;
        continue;
      }
      if (!read_file_range(file->get(), p.offset, p.length, p.text)) return false;
      p.length = 0;  // its bytes are in its text now
    }
  }

  ++stats_.partial;
  write_head(206, req.keep_alive, req.version_minor, out);
  out.append("Content-Type: multipart/byteranges; boundary=");
  out.append(b);
  out.append("\r\n");
  out.append(rep.meta_lines);
  out.append(rep.validator_lines);
  out.append("Content-Length: ");
  append_number(out, total);
  out.append("\r\n\r\n");
  reply.status = 206;
  if (!any_from_disk) {
    for (const auto& p : parts) {
      out.append(p.text);
      if (rep.in_memory) out.append(rep.body().substr(size_t(p.offset), size_t(p.length)));
    }
    out.append(tail);
    return true;
  }
  ++stats_.files_sent;
  reply.file = std::move(file);
  reply.multipart = std::make_unique<Multipart>(Multipart{std::move(parts), std::move(tail)});
  return true;
}

}  // namespace netloop::http
