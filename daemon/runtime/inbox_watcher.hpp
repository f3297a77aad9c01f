#pragma once

#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace barista::runtime {

/// Watches the pools' inbox folders with inotify and reports each file that is complete: closed
/// after writing, or renamed into the folder (the `.x.tmp` then rename pattern); and each entry
/// that is not a regular file (directory, FIFO, symlink, socket) as soon as it appears, so that
/// the handler can refuse it. Thread-safe; the handler runs without the watcher's lock held.
class InboxWatcher {
 public:
  using Handler = std::function<void(const std::string& pool, std::string_view name)>;

  explicit InboxWatcher(Handler handler);
  InboxWatcher(const InboxWatcher&) = delete;
  InboxWatcher& operator=(const InboxWatcher&) = delete;
  ~InboxWatcher();

  /// Starts watching `inbox` for `pool`, then reports the files already there (sorted by name).
  void watch(const std::string& pool, const std::filesystem::path& inbox);
  /// Stops watching the pool's inbox.
  void unwatch(const std::string& pool);

  /// The file descriptor to poll for readability.
  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// Handles the pending events; call when fd() is readable.
  void handle_events();

 private:
  using Found = std::vector<std::pair<std::string, std::string>>;
  static void scan(const std::string& pool, const std::filesystem::path& inbox, Found& out);

  Handler handler_;
  std::mutex mutex_;
  int fd_ = -1;
  std::unordered_map<int, std::string> pools_by_watch_;
  std::unordered_map<std::string, std::pair<int, std::filesystem::path>> watches_;
};

}  // namespace barista::runtime
