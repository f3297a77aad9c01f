#pragma once

// An in-memory source and sink for the pool's engine, and a processor scripted by its payloads:
// the engine driven with no daemon, no disk and no Redis.

#include "daemon/batch/batch_core.hpp"
#include "daemon/batch/result_buffer.hpp"
#include "daemon/plugin/plugin_library.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/pool/sink.hpp"
#include "daemon/pool/source.hpp"
#include "tests/unit/pool/manual_clock.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace barista::test {

class MemoryBatch final : public batch::BatchCore {
 public:
  using BatchCore::BatchCore;
};

/// A job's result as the sink received it.
struct MemoryResult {
  std::string batch;
  std::string id;
  batch::JobStatus status = batch::JobStatus::kOk;
  int attempts = 0;
  double ms = 0;
  std::string text;
  int throttled = 0;
};

/// A pull source of batches given as lists of payloads (ids "1", "2", ...), and the sink that
/// keeps every result. Thread-safe.
class MemoryBackend final : public pool::Source, public pool::Sink {
 public:
  /// Adds a batch; its jobs are read by the pool's workers.
  std::shared_ptr<MemoryBatch> add(const std::string& id, const std::vector<std::string>& payloads);
  /// Waits until `n` results in all have arrived, or `timeout`; returns whether they did.
  bool wait_results(std::size_t n, std::chrono::milliseconds timeout) const;
  [[nodiscard]] std::vector<MemoryResult> results() const;
  /// The results of one batch, by job id (each id's results, in arrival order).
  [[nodiscard]] std::map<std::string, std::vector<MemoryResult>> by_id(
      const std::string& batch) const;
  /// How many results gathered by a worker were handed over at once (flushes with results).
  [[nodiscard]] std::size_t flushes() const;

  void attach(pool::Pool& pool) override { pool_ = &pool; }
  [[nodiscard]] bool readable() const noexcept override { return unread_.load() > 0; }
  pool::JobChunk* next_chunk(std::size_t want) override;
  void interrupt() override;
  std::optional<std::string> claim(std::string_view) override { return std::nullopt; }
  void recover() override {}
  std::unique_ptr<pool::ResultWriter> writer() override;

  void deliver(std::vector<MemoryResult> results);

 private:
  struct Pending {
    std::shared_ptr<MemoryBatch> batch;
    std::vector<std::string> payloads;
    std::size_t next = 0;
  };
  pool::Pool* pool_ = nullptr;
  mutable std::mutex mutex_;
  mutable std::condition_variable arrived_;
  std::deque<Pending> pending_;
  std::vector<std::shared_ptr<MemoryBatch>> batches_;
  std::vector<MemoryResult> results_;
  std::size_t flushes_ = 0;
  std::atomic<std::size_t> unread_{0};
};

/// What the scripted processor saw: attempts running now, and the most at once.
struct ScriptStats {
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  std::atomic<int> started{0};
  std::mutex mutex;                       // guards the two below
  std::map<std::string, int> running_by;  // hold:NAME:MS attempts running now, by NAME
  std::map<std::string, int> most_by;     // and the most at once
  void reset() {
    running = 0;
    most = 0;
    started = 0;
    std::lock_guard lock(mutex);
    running_by.clear();
    most_by.clear();
  }
};
ScriptStats& script_stats();

/// A plugin whose processor does what each payload says:
///   ok:TEXT        returns TEXT
///   fail           a retryable failure ("boom")
///   fatal          a failure never retried ("no")
///   throw          throws std::runtime_error("thrown")
///   flaky:N        fails its first N attempts, then returns "ok"
///   sleep:MS       sleeps MS (cut short by cancellation), then returns "slept"
///   busy:MS        sleeps MS whatever happens, then returns "done"
///   hang:MS        the same, named for a processor that ignores its deadline
///   fail_after:MS  sleeps MS, then fails
///   wait_cancel    waits (up to 5 s) for ctx.cancelled(), then fails ("saw cancel")
///   advance:MS     moves script_clock() on by MS, then returns "advanced"
///   throttle:MS:N  its first N attempts are throttled for MS ("slow down"), then "ok"
///   hold:NAME:MS   sleeps MS whatever happens, counted in running_by[NAME], then "held"
/// A payload "@KEY REST" is the job REST with the key KEY.
std::shared_ptr<const plugin::PluginLibrary> script_plugin();

/// The clock `advance:MS` moves: set by a test that gives its pool a ManualClock.
std::atomic<ManualClock*>& script_clock();

/// A pool config for the scripted plugin.
config::PoolConfig script_pool(int workers, std::size_t queue = 64);

/// A started pool of the scripted plugin over a MemoryBackend (script_stats() reset first),
/// stopped with 2 s of grace at the end.
struct ScriptEngine {
  std::shared_ptr<MemoryBackend> backend = std::make_shared<MemoryBackend>();
  std::unique_ptr<pool::Pool> pool;

  explicit ScriptEngine(const config::PoolConfig& cfg) {
    script_stats().reset();
    pool = std::make_unique<pool::Pool>(cfg, script_plugin(), backend, backend);
    pool->start();
  }
  ScriptEngine(const ScriptEngine&) = delete;
  ScriptEngine& operator=(const ScriptEngine&) = delete;
  ~ScriptEngine() { pool->stop(std::chrono::milliseconds(2000)); }
};

}  // namespace barista::test
