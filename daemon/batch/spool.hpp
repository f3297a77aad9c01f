#pragma once

#include "daemon/batch/batch.hpp"
#include "daemon/batch/crash_journal.hpp"

#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace barista::batch {

/// The largest `submit --weight`.
inline constexpr int kMaxWeight = 1000;

/// Opens a batch's input for reading: never follows a symlink, never waits on a FIFO, and
/// refuses anything but a regular file. The descriptor, or -1 with `error` set and `fault`
/// (when given) true if the storage failed (common::is_storage_fault), rather than the file
/// being gone or not a regular file.
int open_batch_input(const std::filesystem::path& file, std::string& error, bool* fault = nullptr);

/// SPOOL/POOL and its four folders.
class PoolSpool {
 public:
  PoolSpool(const std::filesystem::path& spool, std::string pool);

  [[nodiscard]] const std::string& pool() const noexcept { return pool_; }
  [[nodiscard]] const std::filesystem::path& root() const noexcept { return root_; }
  [[nodiscard]] std::filesystem::path inbox() const { return root_ / "inbox"; }
  [[nodiscard]] std::filesystem::path active() const { return root_ / "active"; }
  [[nodiscard]] std::filesystem::path done() const { return root_ / "done"; }
  [[nodiscard]] std::filesystem::path failed() const { return root_ / "failed"; }

  /// Creates the folders that are missing. Throws std::filesystem::filesystem_error.
  void ensure() const;

  /// Claims `inbox/NAME` as a batch: a unique id (the name without its last extension, then
  /// -2, -3, ...), `active/ID/` created, the file renamed into it as `input.EXT`. nullopt (and a
  /// log line) when the entry is not a batch: a dot-file, not a regular file, or already gone.
  [[nodiscard]] std::optional<Batch::Info> claim(std::string_view name, bool cancel_all) const;
  /// The same for a batch named NAME whose input is the file `source` (a submission's durable
  /// temp file): it goes straight to `active/ID/`, never through the inbox.
  [[nodiscard]] std::optional<Batch::Info> claim(const std::filesystem::path& source,
                                                 std::string_view name, bool cancel_all,
                                                 int weight = 1) const;
  /// Undoes claim() when the batch could not be opened: its input goes back to `source`.
  void unclaim(const Batch::Info& info, const std::filesystem::path& source) const;

  /// A new name for a submitted batch's temp file while it arrives: a dot-file in inbox/ (never
  /// read as a batch) that names this process, `.submit-PID-RANDOM.tmp`.
  [[nodiscard]] std::filesystem::path submission_temp() const;
  /// Removes the temp files of submissions cut short by a daemon that is gone (killed while a
  /// client was uploading); a live process's uploads are left alone. Logs and returns how many.
  std::size_t remove_abandoned_submissions() const;

  /// A batch left in active/ by an earlier run, with the results it already has.
  struct Recovered {
    Batch::Info info;
    ResumedState state;
    std::unordered_map<std::string, std::uint32_t> recorded;  ///< result ids -> how many
    CrashRecords crashes;  ///< the jobs that were running when the daemon crashed
  };
  /// Looks at every folder in active/: finished ones (summary.json written) are moved on,
  /// others are returned to be resumed. A torn last line of results.jsonl is cut off.
  /// Batches for which `skip(id)` is true (already running) are not looked at.
  [[nodiscard]] std::vector<Recovered> recover(
      bool cancel_all, const std::function<bool(const std::string&)>& skip = {}) const;

 private:
  [[nodiscard]] std::string unique_id(std::string_view wanted) const;

  std::string pool_;
  std::filesystem::path root_;
  // The suffix after which unique_id() looks next, per wanted id: a file submitted again and
  // again under one name costs a look or two, not one per earlier batch of that name.
  static constexpr std::size_t kMaxIdHints = 4096;
  mutable std::mutex ids_mutex_;
  mutable std::unordered_map<std::string, int> next_suffix_;
};

}  // namespace barista::batch
