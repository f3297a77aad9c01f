#pragma once

#include "daemon/batch/batch_core.hpp"
#include "daemon/batch/result_buffer.hpp"
#include "daemon/batch/spool.hpp"
#include "daemon/config/config.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/pool/sink.hpp"
#include "daemon/pool/source.hpp"
#include "daemon/redis/model.hpp"
#include "daemon/redis/recorder.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace barista::redis {

class Client;
class KeyLeases;
class Recorder;
class Script;
class StreamStore;

/// A batch of a pool shared through Redis, as this daemon sees it: its results and counts live
/// in Redis; here it is an id and a cancellation token (raised by a cancel message from Redis).
class RemoteBatch final : public batch::BatchCore {
 public:
  using BatchCore::BatchCore;
};

/// A pool shared by several daemons through a Redis stream (docs/several-machines.md), as the
/// engine's source and sink: a feeder thread reads the stream through the consumer group (only
/// what the queue can take) and hands chunks to the pool (a push source); a listener hears
/// cancellations; each worker records results, counted and acknowledged in one script, on its
/// own connection.
///
///   stream (consumer group) -> feeder (XREADGROUP) -> Pool::feed -> workers -> Recorder
class RedisBackend final : public pool::Source, public pool::Sink {
 public:
  /// `spool`: the spool's root (the pool's folders hold submissions while they arrive).
  RedisBackend(std::string pool, const std::filesystem::path& spool);
  ~RedisBackend() override;

  // pool::Source (redis_feed.cpp)
  void attach(pool::Pool& pool) override;
  void start() override;
  void stop() override;
  void interrupt() override;
  [[nodiscard]] std::string state() const override;
  std::optional<std::string> claim(std::string_view name) override;
  void recover() override;

  // pool::Sink (redis_results.cpp)
  std::unique_ptr<pool::ResultWriter> writer() override;

  /// The pool's folders in the spool: submissions are received there before they go to Redis.
  [[nodiscard]] const batch::PoolSpool& spool() const noexcept { return spool_; }

 private:
  class Writer;
  /// A job's result, gathered by its worker until the chunk's results are recorded together.
  struct Gathered {
    std::size_t index = 0;  // in its chunk
    batch::JobStatus status = batch::JobStatus::kOk;
    int attempts = 0;
    double ms = 0;
    std::string text;
    int throttled = 0;
  };

  void feeder_loop();
  void dispatch_entries(StreamStore& store, std::vector<Entry>& entries,
                        const config::PoolConfig& cfg);
  std::shared_ptr<RemoteBatch> remote_batch(StreamStore& store, const std::string& id);
  void refresh_remote_batches(StreamStore& store);
  void cancel_listener_loop();
  /// Applies the pauses and throttles kept in Redis (docs/several-machines.md#keys): at
  /// connect, and when the pool's keys channel says they changed.
  void load_shared_state(Client& client, const config::RedisConfig& cfg, bool throttles);
  void hear_keys_message(Client& client, const config::RedisConfig& cfg, std::string_view payload);
  /// A writer's connection, and the `redis:` settings it was made for.
  struct Connection {
    std::unique_ptr<Recorder> recorder;
    config::RedisConfig made_for;
  };
  /// Records results of a chunk's jobs on `conn` (connected when needed), in one round trip.
  /// With `patient`, tries until they are recorded or the pool stops (then their entries stay
  /// pending in Redis and run again). False when not recorded.
  bool record(Connection& conn, const pool::JobChunk& chunk, const std::vector<Gathered>& results,
              bool patient);
  void note_redis_down(const std::string& why);
  void note_redis_up();
  /// The stream entries this daemon holds (queued, waiting for their key, running): their
  /// idle time in Redis is reset every claim_after / 3, so that only a silent daemon's entries
  /// are taken over, however long they wait here or run (docs/several-machines.md).
  void hold(const pool::JobChunk& chunk);
  void let_go(const pool::JobChunk& chunk, const std::vector<Gathered>* only = nullptr);
  void keep_held(Client& client, Script& keep, const config::RedisConfig& cfg);

  const std::string name_;
  batch::PoolSpool spool_;
  pool::Pool* pool_ = nullptr;
  std::atomic<bool> redis_ok_{true};
  mutable std::mutex mutex_;  // guards batches_
  struct KnownBatch {
    std::shared_ptr<RemoteBatch> batch;
    std::chrono::steady_clock::time_point last_used;
  };
  std::unordered_map<std::string, KnownBatch> batches_;
  std::mutex held_mutex_;  // guards held_
  std::unordered_set<std::string> held_;
  std::shared_ptr<KeyLeases> leases_;  // per_key slots across daemons; the pool's gate has it
  std::thread feeder_;
  std::thread listener_;
};

}  // namespace barista::redis
