#pragma once

#include "daemon/batch/batch.hpp"
#include "daemon/batch/crash_journal.hpp"
#include "daemon/batch/job_parser.hpp"
#include "daemon/batch/line_reader.hpp"
#include "daemon/batch/spool.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/pool/sink.hpp"
#include "daemon/pool/source.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace barista::spool {

/// A pool's batches in the spool (SPOOL/POOL/{inbox,active,done,failed}), as the engine's source
/// and sink: files claimed from the inbox or handed over by `barista submit`, read into chunks
/// by the workers (a pull source), results written to `results.jsonl` with a group commit and
/// the crash journal's marks, and each batch moved to done/ or failed/ when it ends.
///
///   claim (inbox, submit, recover) -> waiting -> open (read by workers) -> results -> finish
class SpoolBackend final : public pool::Source, public pool::Sink {
 public:
  /// `spool`: the spool's root. `running`, when given, is where workers mark the job they run,
  /// for crash recovery. Creates the pool's folders. Throws std::system_error.
  SpoolBackend(std::string pool, const std::filesystem::path& spool,
               std::shared_ptr<batch::RunningJobs> running);
  ~SpoolBackend() override;

  // pool::Source (batches.cpp, intake.cpp, suspects.cpp)
  void attach(pool::Pool& pool) override { pool_ = &pool; }
  void start() override;
  void stop() override;
  [[nodiscard]] bool readable() const noexcept override;
  pool::JobChunk* next_chunk(std::size_t want) override;
  void after_read() override;
  void interrupt() override;
  std::optional<std::string> claim(std::string_view name) override;
  void recover() override;
  std::size_t run_suspects() override;
  [[nodiscard]] std::vector<pool::BatchStatus> batches() const override;

  // pool::Sink (results.cpp)
  std::unique_ptr<pool::ResultWriter> writer() override;
  void tick() override;
  void close() override;

  [[nodiscard]] const batch::PoolSpool& spool() const noexcept { return spool_; }
  /// The batch with this id while it runs here, or nullptr.
  [[nodiscard]] std::shared_ptr<batch::Batch> find_batch(std::string_view id) const;
  /// Stores a submitted batch named NAME: claims the durable temp file `tmp` (a dot-file in
  /// inbox/) straight into active/ID/, as the inbox file NAME would be. Returns the batch id.
  /// Throws std::system_error or std::runtime_error.
  std::string accept_submission(const std::filesystem::path& tmp, std::string_view name,
                                int weight = 1);

  // pool::Source: the storage's health, for status and the metrics
  [[nodiscard]] std::string storage_error() const override;
  [[nodiscard]] std::uint64_t storage_errors() const override {
    return storage_errors_.load(std::memory_order_relaxed);
  }

  /// Ends a batch whose last result was recorded: summary, folder moved on (results.cpp).
  void finish_batch(const std::shared_ptr<batch::Batch>& batch);

 private:
  class Writer;
  /// A batch whose input is being read.
  struct OpenBatch {
    std::shared_ptr<batch::Batch> batch;
    std::unique_ptr<batch::LineReader> reader;  // null when its input could not be opened
    std::unique_ptr<batch::JobParser> parser;
    std::unordered_map<std::string, std::uint32_t> recorded;  // results an earlier run recorded
    batch::CrashRecords crashes;
    int read_in_turn = 0;  // chunks read in its current turn: `weight` of them, then the next
  };
  struct Waiting {
    std::shared_ptr<batch::Batch> batch;
    std::unordered_map<std::string, std::uint32_t> recorded;
    batch::CrashRecords crashes;
  };

  void add_batch(std::shared_ptr<batch::Batch> batch,
                 std::unordered_map<std::string, std::uint32_t> recorded = {},
                 batch::CrashRecords crashes = {});
  /// Claims the batch NAME whose input is `source` (inbox/NAME, or a submission's temp file).
  std::optional<std::string> claim_locked(const std::filesystem::path& source,
                                          std::string_view name, bool submitted = false,
                                          int weight = 1);
  /// Claims up to `limit` files waiting in the inbox.
  void claim_from_inbox(std::size_t limit = SIZE_MAX);
  void claimer_loop();
  /// A claim of inbox/NAME failed: logged (once per file, or once per outage), and the inbox
  /// looked at again later (retry_claims).
  void claim_failed(std::string_view name, const std::exception& e);
  /// The monitor's: claims again what failed to be claimed, kStorageRetryMax after.
  void retry_claims();
  /// A storage call failed with a fault that passes (common::is_storage_fault): the outage is
  /// logged once, and retry rounds run until one succeeds. `stop_jobs` (results or an input
  /// cannot be written or read): no job starts and no batch is claimed meanwhile; otherwise
  /// (a claim failed) the batches already claimed run on.
  void note_storage_failure(const std::string& why, bool stop_jobs = true);
  /// The monitor's retry round while storage fails, every kStorageRetry doubling to
  /// kStorageRetryMax: batches that could not finish, half-done claims, the inbox.
  void retry_storage();
  /// Part of a retry round: opens (and closes) the inputs of the batches waiting to be read;
  /// one that fails with a storage fault fails the round.
  void probe_waiting_inputs();

  // intake (intake.cpp): the reader's, one worker at a time (Source::next_chunk)
  void open_waiting_batches();
  /// Fills `chunk` from `open` with up to `want` jobs; false once its input is read through.
  bool feed_one(OpenBatch& open, pool::JobChunk& chunk, std::size_t want);

  // suspects (suspects.cpp)
  bool run_alone(const std::shared_ptr<batch::Batch>& batch, std::string_view id,
                 std::string_view payload, std::uint64_t line);

  const std::string name_;
  batch::PoolSpool spool_;
  std::shared_ptr<batch::RunningJobs> running_;
  pool::Pool* pool_ = nullptr;

  // The reader's: the worker in Source::next_chunk() (one at a time), or after_read().
  std::vector<OpenBatch> open_;
  std::size_t turn_ = 0;           // the open batch read next (round-robin)
  std::uint64_t generation_ = 0;   // of the settings last read from (0: none yet)
  std::size_t max_job_bytes_ = 0;  // of those settings
  int max_crashes_ = 0;            // of those settings
  std::mutex read_through_mutex_;  // guards read_through_
  std::vector<std::shared_ptr<batch::Batch>> read_through_;  // read to the end: after_read()

  mutable std::mutex mutex_;  // guards everything below
  std::deque<Waiting> waiting_;
  std::vector<std::shared_ptr<batch::Batch>> active_;
  bool inbox_backlog_ = false;  // files left in the inbox because enough batches are claimed
  std::vector<std::shared_ptr<batch::Batch>> unfinished_;  // could not be finished: retried
  std::condition_variable claimer_cv_;
  bool stopping_ = false;

  std::atomic<bool> readable_{false};             // batches wait to be read (raised by add_batch)
  std::atomic<bool> storage_failing_{false};      // the gate: no job starts, no batch is claimed
  std::atomic<std::uint64_t> storage_errors_{0};  // storage calls that failed, ever
  // The outage, if one is on (the monitor's, and note_storage_failure's under mutex_).
  bool outage_ = false;
  bool claims_failed_ = false;                        // some inbox file could not be claimed
  std::set<std::string, std::less<>> failed_claims_;  // and which, for their one log line
  std::chrono::steady_clock::time_point next_claim_retry_;
  std::string storage_error_;  // the last failure's reason
  std::chrono::steady_clock::time_point outage_since_;
  std::chrono::steady_clock::time_point next_retry_;
  std::chrono::steady_clock::duration retry_delay_{};
  std::mutex claim_mutex_;  // one claim at a time: ids are picked by looking at the spool
  std::thread claimer_;     // claims what waited in the inbox once claimed batches have ended
};

}  // namespace barista::spool
