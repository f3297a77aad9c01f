#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace barista::batch {

/// A job as crash bookkeeping names it: its pool, its batch, and its physical line in the input.
struct JobRef {
  std::string pool;
  std::string batch;
  std::uint64_t line = 0;
};

/// The jobs running right now, one slot per worker in a small file mapped into memory
/// (SPOOL/.running). A worker marks its slot just before an attempt starts and clears it after:
/// plain stores into a shared mapping, no system call per job. The kernel keeps those pages when
/// the process dies, so the next start knows which jobs were in flight when the daemon crashed
/// or was killed. (A power cut may lose them: then those jobs simply run again.)
class RunningJobs {
 public:
  static constexpr int kNoSlot = -1;
  static constexpr int kSlots = 4096;

  /// Maps SPOOL/.running, reads what the previous run left marked (left_over()), then clears
  /// every slot for this run. Throws std::system_error.
  explicit RunningJobs(const std::filesystem::path& spool);
  RunningJobs(const RunningJobs&) = delete;
  RunningJobs& operator=(const RunningJobs&) = delete;
  ~RunningJobs();

  /// The jobs that were running when the previous run ended without clear_all(): a crash.
  [[nodiscard]] const std::vector<JobRef>& left_over() const noexcept { return left_over_; }

  /// A free slot for a worker, or kNoSlot when all are taken (its jobs then go unrecorded).
  int acquire();
  void release(int slot);
  /// The job `line` of `batch` in `pool` is about to run in `slot`.
  void mark(int slot, std::string_view pool, std::string_view batch, std::uint64_t line) noexcept;
  /// The attempt in `slot` has returned.
  void clear(int slot) noexcept;
  /// A clean stop: nothing is in flight any more.
  void clear_all() noexcept;

 private:
  struct Slot;
  [[nodiscard]] Slot* slot(int index) const noexcept;

  void* map_ = nullptr;
  std::vector<JobRef> left_over_;
  std::mutex mutex_;  // guards free_
  std::vector<int> free_;
};

/// What crashes a batch's jobs were in flight at, kept in `active/ID/crashes`.
struct CrashRecord {
  std::uint32_t crashes = 0;  ///< daemon crashes while the job was running
  bool alone = false;         ///< at the last of them, it was the only job running
  /// Known for certain to crash the daemon: alone at the last of `max_crashes` crashes. Such a
  /// job fails with "crashed the daemon N times" and never runs again.
  [[nodiscard]] bool given_up(int max_crashes) const {
    return alone && static_cast<int>(crashes) >= max_crashes;
  }
};
using CrashRecords = std::map<std::uint64_t, CrashRecord>;  ///< by input line

/// The batch folder's crash records; empty when it has none.
CrashRecords read_crash_records(const std::filesystem::path& batch_dir);

/// Counts one crash against each job of `in_flight` (the previous run's left_over()) in its
/// batch's crash records, written durably. Jobs of batches no longer in active/ are ignored.
void note_crash(const std::filesystem::path& spool, const std::vector<JobRef>& in_flight);

}  // namespace barista::batch
