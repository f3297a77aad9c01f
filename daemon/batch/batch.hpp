#pragma once

#include "daemon/batch/batch_core.hpp"
#include "daemon/batch/job_counters.hpp"
#include "daemon/batch/job_parser.hpp"
#include "daemon/batch/result_buffer.hpp"
#include "daemon/batch/summary.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace barista::batch {

/// What a batch folder already holds when a batch is resumed after a restart.
struct ResumedState {
  Counts counts;
  std::optional<FirstError> first_error;
  bool cancelled = false;
};

/// One batch: its results file, counts, first error and cancellation token. Thread-safe:
/// workers record results concurrently; the pool's housekeeping commits them in groups.
class Batch : public BatchCore {
 public:
  struct Info {
    std::string id;
    std::string pool;
    std::filesystem::path pool_dir;  ///< SPOOL/POOL
    std::string input_name;          ///< input.EXT inside the batch folder
    InputFormat format = InputFormat::kText;
    std::chrono::system_clock::time_point started;
    bool cancel_all = false;
    /// Its share of the pool's workers against the pool's other batches (`submit --weight`).
    int weight = 1;
    std::shared_ptr<JobCounters> counters;  ///< the pool's metrics; may be null
    /// Makes the results file durable (fdatasync); tests put a slow or failing one here.
    std::function<int(int fd)> sync_file;
  };

  /// Opens (creates or appends to) `active/ID/results.jsonl`. Throws std::system_error.
  Batch(Info info, ResumedState resumed = {});
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  ~Batch();

  [[nodiscard]] const Info& info() const noexcept { return info_; }
  [[nodiscard]] std::filesystem::path dir() const;
  [[nodiscard]] std::filesystem::path input_path() const { return dir() / info_.input_name; }

  /// Records a job's one and only result. Under cancel_all, a failure cancels the batch.
  void record(std::string_view id, JobStatus status, int attempts, double ms,
              std::string_view text);
  /// Records the results gathered in `results` (of this batch's jobs) in one step, and empties
  /// it. Under cancel_all, a failure among them cancels the batch.
  void commit(ResultBuffer& results);

  /// Jobs handed to workers and not yet recorded, plus one while the reader is still reading.
  void add_pending(std::uint64_t n) noexcept { pending_.fetch_add(n, std::memory_order_relaxed); }
  /// Returns true when this release ended the batch's last pending work: then call finish().
  bool release_pending(std::uint64_t n = 1) noexcept {
    return pending_.fetch_sub(n, std::memory_order_acq_rel) == n;
  }

  /// Writes buffered results to the file, and fsyncs it when `sync` (group commit). False when
  /// that failed (a full disk): the file is cut back to its last whole line, the results stay
  /// buffered for the next try, and write_error() says why. The fsync does not hold up writes:
  /// workers that fill the buffer meanwhile write to the file while the disk catches up.
  ///
  /// A failed fsync is never retried as if nothing happened: the kernel may have dropped the
  /// pages it could not write, and a later fsync that returns 0 says nothing of them. So what
  /// was written since the last good fsync is kept in memory, and after a failed one it is
  /// written again, in place, before the next fsync; only an fsync after that rewrite makes it
  /// durable (docs/crash-safety.md#a-failed-fsync).
  bool flush(bool sync);
  /// Why the last flush failed; empty when it did not.
  [[nodiscard]] std::string write_error() const;

  /// Ends the batch: results fsynced, summary.json written, folder moved to done/ or failed/.
  /// Throws std::system_error, or std::runtime_error when the results cannot be written: then
  /// no summary is written, and finish() may be called again.
  void finish();

  /// Its summary: as it ended at `end` in `state`, or, without `end`, its counts so far
  /// ("running").
  [[nodiscard]] Summary summary(
      std::string_view state,
      std::optional<std::chrono::system_clock::time_point> end = std::nullopt) const;
  /// A snapshot for status: results so far, and the number of jobs once the whole input is read.
  [[nodiscard]] Counts counts() const;
  [[nodiscard]] std::uint64_t jobs_read() const noexcept {
    return jobs_read_.load(std::memory_order_relaxed);
  }
  void add_jobs_read(std::uint64_t n) noexcept {
    jobs_read_.fetch_add(n, std::memory_order_relaxed);
  }
  /// The whole input has been read: jobs_read() is the batch's number of jobs.
  void mark_read_all() noexcept { read_all_.store(true, std::memory_order_release); }
  [[nodiscard]] bool read_all() const noexcept { return read_all_.load(std::memory_order_acquire); }
  [[nodiscard]] bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }
  /// Calls `wake` once, on the thread that ends the batch, when finish() has ended it (its
  /// folder moved on); at once when it has already. `wake` must be quick and must not call back
  /// into the batch. Returns a number for forget_finished().
  std::uint64_t when_finished(std::function<void()> wake);
  /// Drops a when_finished() call that is no longer wanted (a client that went away).
  void forget_finished(std::uint64_t id);

 private:
  /// Writes unsynced_ again where it was (sync_mutex_ and io_mutex_ held); 0 or the errno.
  int rewrite_unsynced();
  /// Lets go of what an fsync made durable, up to file offset `synced` (sync_mutex_ held).
  void forget_synced(std::uint64_t synced);

  Info info_;
  int fd_ = -1;
  std::atomic<bool> finished_{false};
  std::mutex end_mutex_;  // guards wakes_, and finished_'s change against when_finished()
  std::vector<std::pair<std::uint64_t, std::function<void()>>> wakes_;
  std::uint64_t next_wake_ = 0;
  std::atomic<std::uint64_t> pending_{1};
  std::atomic<std::uint64_t> jobs_read_{0};
  std::atomic<bool> read_all_{false};

  mutable std::mutex mutex_;  // guards buffer_, counts_, first_error_
  std::string buffer_;
  std::string write_error_;
  Counts counts_;
  std::optional<FirstError> first_error_;

  std::mutex io_mutex_;  // serialises writes to fd_; guards spare_, written_, unsynced_
  std::string spare_;
  std::uint64_t written_ = 0;  // bytes of whole lines in the file
  // What this process wrote since the last good fsync, as written, from file offset
  // unsynced_from_ on: written again after a failed fsync (rewrite_).
  std::vector<std::string> unsynced_;
  // Bytes of the file known to be on disk. Changed with both mutexes held (forget_synced), so
  // read under either.
  std::uint64_t unsynced_from_ = 0;

  std::mutex sync_mutex_;  // serialises fsyncs of fd_; guards rewrite_
  bool rewrite_ = false;   // the last fsync failed: the next one writes unsynced_ again first
};

}  // namespace barista::batch
