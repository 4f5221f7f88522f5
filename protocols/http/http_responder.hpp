// HttpResponder: the static-file service: routing to the root (or the built-in page),
// dotfiles, redirects, the file cache, precompressed siblings, and which response a file
// request gets (200, 206, 304, 412, 416: file_response.hpp writes them).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/byte_range.hpp"
#include "http/file_cache.hpp"
#include "http/responder.hpp"
#include "http/root_directory.hpp"
#include "netloop/result.hpp"

namespace netloop::http {

class HttpResponder final : public Responder {
 public:
  // Fails when the root cannot be opened (the error names the cause). `resolver` is for
  // tests of the portable path.
  static Result<std::shared_ptr<HttpResponder>> create(
      const HttpOptions& options,
      RootDirectory::Resolver resolver = RootDirectory::Resolver::automatic);

  Reply respond(const Request& req, TimePoint now, Buffer& out) override;

  const FileCache& cache() const noexcept { return cache_; }
  // The served root, resolved ("" for the built-in page).
  std::string root_path() const { return root_ ? root_->path() : std::string(); }
  const RootDirectory* root() const noexcept { return root_ ? &*root_ : nullptr; }

 private:
  HttpResponder(const HttpOptions& options, std::optional<RootDirectory> root);
  Reply builtin_page(const Request& req, Buffer& out);
  Reply redirect_to_directory(const Request& req, Buffer& out);
  // The entry for `key` (path_ on disk), fresh as of `now`: from the cache, or opened and
  // made anew. nullptr with `status` set when it cannot be served. `file` receives the
  // open descriptor when one was opened (a large file is sent from it).
  CachedFile* lookup(std::string_view key, bool directory, TimePoint now, uint16_t& status,
                     std::string_view& reason, Fd& file);
  // The representation to serve for `identity`'s path: a precompressed sibling the client
  // takes, or `identity` itself.
  CachedFile* choose_representation(CachedFile& identity, const Request& req, TimePoint now, Fd& file);
  // Makes the entry of one representation (the original when `coding` is identity, which
  // also looks for its siblings) from the file just opened, reading a small one in.
  CachedFile* make_entry(std::string_view key, std::string_view disk_path, Coding coding,
                         std::string_view content_type, OpenedFile& f, TimePoint now, Fd& file);
  uint8_t siblings_of(std::string_view disk_path, const struct stat& original);
  bool leads_to_hidden(const OpenedFile& f);
  Reply finish(const CachedFile* rep, Reply reply);
  // Writes the response of `rep` (preconditions, ranges, or the whole); false, with
  // nothing written, when a representation sent from disk turned out to have changed
  // (its entry is then gone).
  bool serve(CachedFile& rep, SharedFd file, const Request& req, TimePoint now, Buffer& out, Reply& reply);
  bool serve_range(CachedFile& rep, SharedFd file, const Request& req, TimePoint now, Buffer& out,
                   Reply& reply);
  bool serve_whole(CachedFile& rep, SharedFd file, const Request& req, TimePoint now, Buffer& out,
                   Reply& reply);
  bool open_body(CachedFile& rep, SharedFd& file, const Request& req, TimePoint now, Buffer& out,
                 Reply& reply);
  SharedFd open_unchanged(CachedFile& rep, TimePoint now, uint16_t& status);
  void write_not_modified(CachedFile& rep, const Request& req, TimePoint now, Buffer& out);
  bool write_multipart(CachedFile& rep, const RangeSet& ranges, SharedFd& file, const Request& req,
                       Buffer& out, Reply& reply);
  std::string boundary();

  std::optional<RootDirectory> root_;
  FileCache cache_;
  std::string builtin_headers_;
  std::string path_;     // the normalized request path
  std::string key_;      // its cache key
  std::string sibling_;  // a sibling's path or key
  std::string scratch_;  // for RootDirectory::open_file
  CachedFile uncached_;  // an entry too large for the cache, for the request at hand
  std::string range_bytes_;  // a small range of a large file, read in
  uint64_t boundary_seed_;
  uint64_t boundaries_ = 0;
};

}  // namespace netloop::http
