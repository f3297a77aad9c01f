#pragma once

#include "daemon/config/config.hpp"

#include <cstdint>
#include <string>
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
  /// What the pool's source says of its backend ("connected" or "unavailable" for a pool shared
  /// through Redis); empty when it has nothing to say.
  std::string redis;
  /// Why the pool's storage fails now (no job starts, no batch is claimed until it works
  /// again); empty while it works.
  std::string storage_error;
  std::uint64_t storage_errors = 0;  ///< storage calls that failed, since the pool started
  bool paused = false;               ///< `barista pause POOL`
  std::vector<std::string> paused_keys;
  std::uint64_t throttles = 0;     ///< throttled attempts, since the pool started
  std::uint64_t keys_blocked = 0;  ///< keys throttled, paused or at their limit now
  std::uint64_t set_aside = 0;     ///< jobs waiting for their key (counted in `queued` too)
  /// How long the job waiting longest to start has waited (0 when none waits), about: the
  /// head of the queue, or a job set aside for its key.
  double oldest_queued_seconds = 0;
  /// Worker processes started again after one ended (isolation: process, plugin: exec).
  std::uint64_t worker_restarts = 0;
  /// Why its worker processes are no longer started (they died at start for a minute); empty
  /// while they are.
  std::string workers_failing;
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

}  // namespace barista::pool
