#pragma once

#include "daemon/batch/crash_journal.hpp"
#include "daemon/batch/spool.hpp"
#include "daemon/config/config.hpp"
#include "daemon/plugin/plugin_library.hpp"
#include "daemon/pool/job_chunk.hpp"
#include "daemon/pool/rate_limiter.hpp"
#include "daemon/pool/sleepers.hpp"
#include "daemon/redis/model.hpp"

#include <tbb/concurrent_queue.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace barista::redis {
class Recorder;
class StreamStore;
}  // namespace barista::redis

namespace barista::pool {

/// A snapshot of a pool for `status` and the metrics.
struct PoolStatus {
  std::string name;
  std::string plugin;
  int workers = 0;
  int busy = 0;
  std::uint64_t queued = 0;
  std::uint64_t abandoned = 0;
  config::OnError on_error = config::OnError::kContinue;
  /// A pool shared through Redis: "connected" or "unavailable"; empty for a spool pool.
  std::string redis;
};

/// A batch as `status` shows it.
struct BatchStatus {
  std::string batch;
  std::string pool;
  std::uint64_t done = 0;
  std::uint64_t total = 0;  ///< jobs read so far (all of them once the input is fully read)
  std::uint64_t failed = 0;
  bool read_all = false;  ///< the whole input has been read: `total` is final
};

/// What the pool's jobs run with. Replaced as a whole by a reload: attempts that start after it
/// use the new settings; running ones finish on the old.
struct PoolSettings {
  config::PoolConfig config;
  std::shared_ptr<const plugin::PluginLibrary> library;
  std::shared_ptr<RateLimiter> rate;
  std::uint64_t generation = 0;
  /// The generation whose reload last changed the plugin or its `config:`: a worker whose
  /// processor is that old or newer keeps it across later reloads (workers, retries, ...).
  std::uint64_t processors_generation = 0;
};

/// A named pool: a bounded queue of job chunks, drained by a fixed number of workers, each with
/// its own processor, and fed from the pool's batches by the workers themselves (a worker that
/// finds the queue empty reads: intake.cpp) or, for a pool shared through Redis, by a thread that
/// reads the stream.
///
///   batches -> worker that reads (parses, chunks) -> tbb::concurrent_bounded_queue -> workers
///
/// The queue bounds memory: no more than `queue` jobs are read ahead of the workers (plus the
/// chunk each worker holds), so a batch of any size is never held in memory.
class Pool {
 public:
  /// Creates one processor per worker with the plugin's factory (which may throw: the pool is
  /// refused) and the spool folders. Threads start with start(). `running`, when given, is
  /// where workers mark the job they run, for crash recovery.
  Pool(config::PoolConfig config, std::shared_ptr<const plugin::PluginLibrary> library,
       const std::filesystem::path& spool, std::shared_ptr<batch::RunningJobs> running = nullptr);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

  /// One processor per worker of `config`, for start-up, a reload, or a check. Throws.
  static std::vector<plugin::ProcessorHandle> make_processors(const config::PoolConfig& config,
                                                              const plugin::PluginLibrary& library);

  /// Starts the workers and the housekeeping. With `hold`, no batch is read until release()
  /// (run_suspects() may run jobs meanwhile).
  void start(bool hold = false);
  /// Lets a held pool start reading batches.
  void release();

  /// Runs the jobs that were in flight when the daemon crashed (the recovered batches' crash
  /// records), one at a time, each alone in the pool; returns when they have their results (or
  /// the pool stops). For a held pool, while no other pool runs anything: so that a job that
  /// crashes the daemon again is known for certain. Returns how many ran.
  std::size_t run_suspects();

  /// Hands a claimed (or recovered) batch to the pool. `recorded`: results it already has;
  /// `crashes`: its jobs that were running when the daemon crashed.
  void add_batch(std::shared_ptr<batch::Batch> batch,
                 std::unordered_map<std::string, std::uint32_t> recorded = {},
                 batch::CrashRecords crashes = {});

  /// Claims `inbox/NAME` and adds it; the batch id, or nullopt when it is not a batch.
  std::optional<std::string> claim(std::string_view name);

  /// Resumes the batches an earlier run left in active/.
  void recover();

  /// Applies a reload: new settings for attempts that start from now on, processors made from
  /// them (one per worker of `config`), and the new number of workers (extra workers finish the
  /// jobs they hold, then leave; new ones start at once).
  void reconfigure(config::PoolConfig config, std::shared_ptr<const plugin::PluginLibrary> library,
                   std::vector<plugin::ProcessorHandle> processors);

  /// Graceful stop: no new jobs start; running ones get `timeout` to finish, then are cancelled
  /// and their results discarded (they run again after the next start). Results are fsynced.
  void stop(std::chrono::milliseconds timeout);

  [[nodiscard]] std::shared_ptr<const PoolSettings> settings() const;
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const batch::PoolSpool& spool() const noexcept { return spool_; }
  [[nodiscard]] PoolStatus status() const;
  [[nodiscard]] std::vector<BatchStatus> batches() const;
  /// The active batch with this id, or nullptr.
  [[nodiscard]] std::shared_ptr<batch::Batch> find_batch(std::string_view id) const;
  /// False when the pool's housekeeping thread has not ticked for `limit` (it is wedged): the
  /// systemd watchdog stops pinging. A pool that is stopping counts as alive.
  [[nodiscard]] bool alive(std::chrono::steady_clock::duration limit) const;
  /// Running totals for the metrics.
  [[nodiscard]] const batch::JobCounters& counters() const noexcept { return *counters_; }

  /// Stores a submitted batch named NAME: claims the durable temp file `tmp` (a dot-file in
  /// inbox/) straight into active/ID/, as the inbox file NAME would be. Returns the batch id.
  /// Throws std::system_error or std::runtime_error.
  std::string accept_submission(const std::filesystem::path& tmp, std::string_view name);

 private:
  struct Worker;
  struct OpenBatch;
  struct Waiting {
    std::shared_ptr<batch::Batch> batch;
    std::unordered_map<std::string, std::uint32_t> recorded;
    batch::CrashRecords crashes;
  };
  friend struct Worker;

  // intake (intake.cpp): a spool pool's batches are read by the workers themselves
  struct Intake;
  /// Called by a worker that found the queue empty: reads a chunk for it and refills the queue.
  /// Null when there is nothing to read, or another worker is reading.
  JobChunk* read_for_worker();
  /// There is input to read, and nothing forbids reading it now.
  [[nodiscard]] bool may_read() const noexcept;
  /// may_read(), and no worker is reading: an idle worker should read.
  [[nodiscard]] bool someone_may_read() const noexcept;
  /// Moves waiting batches to the open ones, and sizes the queue after a reload. Intake lock.
  void open_waiting_batches();
  /// The next chunk of the open batches, round-robin; null when they have none now. Intake lock.
  JobChunk* read_chunk(std::vector<std::shared_ptr<batch::Batch>>& read_through);
  /// Fills `chunk` from `open`; false once its input is read through.
  bool feed_one(OpenBatch& open, JobChunk& chunk);
  void recycle_unread(JobChunk* chunk);
  /// Puts a chunk in the queue, sleeping while it is full. Throws tbb::user_abort when stopping.
  void push(JobChunk* chunk);
  [[nodiscard]] std::size_t chunk_size() const;
  void apply_queue_settings(const config::PoolConfig& config);

  // workers (worker.cpp)
  void worker_loop(const std::shared_ptr<Worker>& self);
  void run_chunk(const std::shared_ptr<Worker>& self, JobChunk* chunk);
  /// Takes a chunk from the queue, sleeping while it is empty; false when woken without one
  /// (to look at stopping_ and retire_ again).
  bool take(JobChunk*& chunk);
  /// Records a job's result: into the worker's buffer (a spool batch) or into Redis.
  void record_result(Worker& self, JobChunk& chunk, std::size_t index, batch::JobStatus status,
                     int attempts, double ms, std::string_view text);
  /// Hands the worker's gathered results to `batch`, and ends the batch when they were its last.
  void commit_results(Worker& worker, const std::shared_ptr<batch::Batch>& batch);
  [[nodiscard]] int busy_locked() const;
  /// `now`: the clock when the job starts; on return, when it ended.
  bool run_job(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
               std::chrono::steady_clock::time_point& now);
  void adopt_settings(Worker& self);
  bool should_retire();
  std::shared_ptr<Worker> make_worker_locked(plugin::ProcessorHandle processor, JobChunk* orphan);
  void spawn_worker_locked(plugin::ProcessorHandle processor, JobChunk* orphan);
  bool run_alone(const std::shared_ptr<batch::Batch>& batch, std::string_view id,
                 std::string_view payload, std::uint64_t line);

  // a pool shared through Redis (redis_feed.cpp): the feeder reads the stream, a listener
  // hears cancellations; results are recorded on the recording thread's own connection
  void redis_feeder_loop();
  void dispatch_entries(redis::StreamStore& store, std::vector<redis::Entry>& entries,
                        const config::PoolConfig& cfg);
  std::shared_ptr<RemoteBatch> remote_batch(redis::StreamStore& store, const std::string& id);
  void refresh_remote_batches(redis::StreamStore& store);
  void cancel_listener_loop();
  /// Nothing queued and no job running.
  [[nodiscard]] bool idle() const;
  /// Records results of a Redis chunk's jobs on `recorder` (connected when needed), in one
  /// round trip. With `retry`, tries until they are recorded or the pool stops (then their
  /// entries stay pending in Redis and run again). False when not recorded. `settings`: the
  /// pool's current ones, passed in because the monitor calls it holding mutex_.
  bool record_remote(const PoolSettings& settings, std::unique_ptr<redis::Recorder>& recorder,
                     const JobChunk& chunk, const std::vector<RemoteResult>& results, bool retry);
  /// Records the Redis results the worker gathered for `chunk`.
  void flush_remote(Worker& worker, const JobChunk& chunk);
  void note_redis_down(const std::string& why);
  void note_redis_up();
  [[nodiscard]] bool is_redis() const { return redis_; }

  // housekeeping
  void monitor_loop();
  void check_stuck_workers();
  void finish_batch(const std::shared_ptr<batch::Batch>& batch);
  void note_write_failure(const std::string& why);
  void note_write_success();

  /// Claims the batch NAME whose input is `source` (inbox/NAME, or a submission's temp file).
  std::optional<std::string> claim_locked(const std::filesystem::path& source,
                                          std::string_view name, bool submitted = false);
  /// Claims up to `limit` files waiting in the inbox.
  void claim_from_inbox(std::size_t limit = SIZE_MAX);
  void claimer_loop();
  JobChunk* take_free_chunk();
  void recycle(JobChunk* chunk);

  const std::string name_;
  batch::PoolSpool spool_;
  std::shared_ptr<batch::RunningJobs> running_;
  std::shared_ptr<batch::JobCounters> counters_ = std::make_shared<batch::JobCounters>();
  std::atomic<std::uint64_t> generation_{1};
  std::size_t max_chunk_ = 1;        // the reader's (intake lock, or a Redis pool's feeder)
  std::uint64_t queue_jobs_ = 1;     // `queue`: jobs the reader queues at most (the same)
  std::ptrdiff_t queue_chunks_ = 1;  // the queue's capacity in chunks (the same)
  std::unique_ptr<Intake> intake_;
  std::atomic<bool> readable_{false};  // batches wait to be read (raised by add_batch)
  std::atomic<bool> reading_{false};   // a worker holds the intake lock

  tbb::concurrent_bounded_queue<JobChunk*> queue_;  // only its non-blocking calls are used
  Sleepers idle_;                                   // workers waiting for a chunk
  Sleepers space_;  // a pusher (Redis feeder, run_alone) waiting for room in the queue
  /// A pusher waiting for room is woken when the queue is down to this many chunks (half its
  /// capacity), so that it refills it in one go instead of waking for each chunk taken.
  std::atomic<std::ptrdiff_t> refill_at_{0};
  tbb::concurrent_queue<JobChunk*> free_chunks_;
  std::atomic<std::uint64_t> queued_{0};
  std::atomic<std::int64_t> job_ns_{0};  // moving average of a job's run time

  mutable std::mutex mutex_;  // guards everything below
  std::shared_ptr<const PoolSettings> settings_;
  std::vector<plugin::ProcessorHandle> fresh_processors_;  // made by the last reload, not yet used
  std::condition_variable feeder_cv_;
  std::deque<Waiting> waiting_;
  std::atomic<bool> held_{false};  // nothing is read until release()
  bool released_ = false;
  bool inbox_backlog_ = false;  // files left in the inbox because enough batches are claimed
  std::vector<std::shared_ptr<batch::Batch>> active_;
  std::vector<std::shared_ptr<Worker>> workers_;
  std::vector<std::thread> retired_threads_;
  std::condition_variable workers_cv_;
  int workers_running_ = 0;
  int retire_ = 0;          // workers asked to leave
  std::mutex claim_mutex_;  // one claim at a time: ids are picked by looking at the spool

  std::atomic<bool> started_{false};
  std::atomic<std::int64_t> last_tick_ns_{0};     // steady clock, by the housekeeping thread
  std::atomic<bool> stopping_{false};             // no new jobs start
  std::atomic<bool> discard_{false};              // graceful stop timed out: results are discarded
  std::atomic<bool> storage_failing_{false};      // results cannot be written (a full disk)
  std::atomic<std::int64_t> last_failure_ns_{0};  // steady clock
  std::vector<std::shared_ptr<batch::Batch>> unfinished_;  // guarded by mutex_
  std::atomic<std::uint64_t> abandoned_{0};

  std::thread feeder_;  // a Redis pool's
  std::thread monitor_;
  std::thread claimer_;  // claims what waited in the inbox once claimed batches have ended

  // Redis pools only.
  bool redis_ = false;  // set at construction: a pool does not change kind at a reload
  std::atomic<bool> redis_ok_{true};
  std::mutex remote_mutex_;
  struct KnownBatch {
    std::shared_ptr<RemoteBatch> batch;
    std::chrono::steady_clock::time_point last_used;
  };
  std::unordered_map<std::string, KnownBatch> remote_batches_;  // guarded by remote_mutex_
  std::unique_ptr<redis::Recorder> monitor_recorder_;           // monitor thread only
  std::thread listener_;
  std::condition_variable claimer_cv_;
  std::mutex monitor_mutex_;
  std::condition_variable monitor_cv_;
};

}  // namespace barista::pool
