#pragma once

// Where a response body goes while it arrives: counted only, or written into `save_dir` under a
// temporary name and renamed into place once the fetch succeeded, so that a saved file is always
// a complete body and a failed fetch leaves nothing behind.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace barista_http {

/// The name a body fetched from `url` is saved under: the lowercase hex SHA-256 of the URL
/// exactly as the payload gave it (so the same URL always maps to the same file).
std::string body_file_name(std::string_view url);

class BodySink {
 public:
  /// `save_dir_fd`: an open folder (owned by the caller), or -1 to only count bytes.
  explicit BodySink(int save_dir_fd) : dir_fd_(save_dir_fd) {}
  BodySink(const BodySink&) = delete;
  BodySink& operator=(const BodySink&) = delete;
  ~BodySink() { abort(); }

  /// Starts the body of `url`. Returns 0 or an errno.
  int begin(std::string_view url);
  /// Appends to the body. Returns 0 or an errno.
  int write(const char* data, std::size_t size);
  /// Gives the body its final name (replacing an older one). Returns 0 or an errno.
  int commit();
  /// Discards what was written, if anything.
  void abort();

  /// Bytes received so far.
  [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  int dir_fd_;
  int file_fd_ = -1;
  std::uint64_t bytes_ = 0;
  std::string temp_name_;
  std::string final_name_;
};

}  // namespace barista_http
