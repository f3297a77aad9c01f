#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace barista::common {

/// fsync()s a folder so that entries created, renamed or removed in it survive a crash.
void fsync_dir(const std::filesystem::path& dir);

/// Writes `content` to `file` so that after a crash the file is either absent/old or complete:
/// temp file in the same folder, write, fsync, rename over `file`, fsync the folder.
/// Throws std::system_error.
void write_file_durably(const std::filesystem::path& file, std::string_view content);

/// write_file_durably in two steps, so that the file's data can go to disk while the caller
/// syncs something else: the constructor writes the temp file and starts its write-back;
/// commit() fsyncs it, renames it over `file` and fsyncs the folder. A file system that commits
/// its journal for the caller's sync then commits this file's new blocks in the same go, and
/// commit()'s fsync finds little left to do. Destroyed without commit(), it removes the temp
/// file. Throws std::system_error.
class DurableWrite {
 public:
  DurableWrite(std::filesystem::path file, std::string_view content);
  DurableWrite(const DurableWrite&) = delete;
  DurableWrite& operator=(const DurableWrite&) = delete;
  ~DurableWrite();
  void commit();

 private:
  std::filesystem::path file_;
  std::filesystem::path tmp_;
  int fd_ = -1;
};

/// Creates or truncates `file` and writes `content`, without syncing it: for files whose loss or
/// tearing in a power cut does no harm. Throws std::system_error.
void write_file(const std::filesystem::path& file, std::string_view content);

/// Renames `from` to `to` and fsyncs both parent folders. Throws std::system_error.
void rename_durably(const std::filesystem::path& from, const std::filesystem::path& to);

/// Reads a whole (small) file. Throws std::system_error.
std::string read_file(const std::filesystem::path& file);

/// Reads from `fd` until its end or until `limit` bytes are read, whichever comes first; `what`
/// names it in the error. Throws std::system_error.
std::string read_up_to(int fd, std::size_t limit, const std::string& what);

/// Now as ISO 8601 UTC with milliseconds: 2026-11-27T18:32:04.123Z.
std::string iso8601_utc(std::chrono::system_clock::time_point t);

}  // namespace barista::common
