#pragma once

#include "daemon/batch/spool.hpp"
#include "daemon/config/config.hpp"
#include "daemon/plugin/plugin_library.hpp"
#include "daemon/pool/job_chunk.hpp"
#include "daemon/pool/rate_limiter.hpp"

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
};

/// A batch as `status` shows it.
struct BatchStatus {
  std::string batch;
  std::string pool;
  std::uint64_t done = 0;
  std::uint64_t total = 0;  ///< jobs read so far (all of them once the input is fully read)
  std::uint64_t failed = 0;
};

/// A named pool: a bounded queue of job chunks fed from the pool's batches by one reader thread,
/// drained by a fixed number of workers, each with its own processor.
///
///   batches -> feeder (reads, parses, chunks) -> tbb::concurrent_bounded_queue -> workers
///
/// The queue's capacity bounds memory: the feeder blocks when it is full, so a batch of any size
/// is never held in memory.
class Pool {
 public:
  /// Creates one processor per worker (the plugin's factory may throw: the pool is refused)
  /// and the spool folders. Threads start with start().
  Pool(config::PoolConfig config, std::shared_ptr<const plugin::PluginLibrary> library,
       const std::filesystem::path& spool);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

  void start();

  /// Hands a claimed (or recovered) batch to the pool. `recorded`: results it already has.
  void add_batch(std::shared_ptr<batch::Batch> batch,
                 std::unordered_map<std::string, std::uint32_t> recorded = {});

  /// Claims `inbox/NAME` and adds it; false when it is not a batch.
  bool claim(std::string_view name);

  /// Resumes the batches an earlier run left in active/.
  void recover();

  /// Graceful stop: no new jobs start; running ones get `timeout` to finish, then are cancelled
  /// and their results discarded (they run again after the next start). Results are fsynced.
  void stop(std::chrono::milliseconds timeout);

  [[nodiscard]] const config::PoolConfig& config() const noexcept { return config_; }
  [[nodiscard]] const batch::PoolSpool& spool() const noexcept { return spool_; }
  [[nodiscard]] PoolStatus status() const;
  [[nodiscard]] std::vector<BatchStatus> batches() const;

 private:
  struct Worker;
  struct OpenBatch;
  friend struct Worker;

  // feeder
  void feeder_loop();
  bool feed_one(OpenBatch& open, JobChunk*& chunk);
  [[nodiscard]] std::size_t chunk_size() const;

  // workers (worker.cpp)
  void worker_loop(const std::shared_ptr<Worker>& self);
  void run_chunk(const std::shared_ptr<Worker>& self, JobChunk* chunk);
  bool run_job(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index);
  std::shared_ptr<Worker> spawn_worker(JobChunk* orphan);

  // housekeeping
  void monitor_loop();
  void check_stuck_workers();
  void finish_batch(const std::shared_ptr<batch::Batch>& batch);

  JobChunk* take_free_chunk();
  void recycle(JobChunk* chunk);

  config::PoolConfig config_;
  std::shared_ptr<const plugin::PluginLibrary> library_;
  batch::PoolSpool spool_;
  std::optional<RateLimiter> rate_;
  std::size_t max_chunk_ = 1;

  tbb::concurrent_bounded_queue<JobChunk*> queue_;
  tbb::concurrent_queue<JobChunk*> free_chunks_;
  std::atomic<std::uint64_t> queued_{0};
  std::atomic<std::int64_t> job_ns_{0};  // moving average of a job's run time

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable feeder_cv_;
  std::deque<std::pair<std::shared_ptr<batch::Batch>, std::unordered_map<std::string, std::uint32_t>>>
      waiting_;
  std::vector<std::shared_ptr<batch::Batch>> active_;
  std::vector<std::shared_ptr<Worker>> workers_;
  std::vector<plugin::ProcessorHandle> spare_processors_;
  std::condition_variable workers_cv_;
  int workers_running_ = 0;

  std::atomic<bool> stopping_{false};   // no new jobs start
  std::atomic<bool> discard_{false};    // graceful stop timed out: results are discarded
  std::atomic<std::uint64_t> abandoned_{0};
  std::atomic<int> busy_{0};

  std::thread feeder_;
  std::thread monitor_;
  std::mutex monitor_mutex_;
  std::condition_variable monitor_cv_;
};

}  // namespace barista::pool
