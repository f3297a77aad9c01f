#pragma once

#include "daemon/plugin/plugin_library.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/redis/recorder.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <thread>

namespace barista::pool {

/// One worker thread and the processor it owns. The fields the monitor reads to give a stuck job
/// its result are written before `state` becomes kRunning (release) and read after the monitor's
/// compare-exchange to kAbandoned (acquire).
struct Pool::Worker {
  enum State : int { kIdle, kRunning, kAbandoned };

  Worker(plugin::ProcessorHandle p, std::shared_ptr<batch::RunningJobs> r)
      : processor(std::move(p)),
        running(std::move(r)),
        slot(running ? running->acquire() : batch::RunningJobs::kNoSlot) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker() {
    if (running) {
      running->release(slot);
    }
  }

  plugin::ProcessorHandle processor;
  std::shared_ptr<batch::RunningJobs> running;  // where the job about to run is marked
  int slot;
  std::shared_ptr<const PoolSettings> settings;  // what the processor was made from
  std::atomic<int> state{kIdle};
  std::atomic<std::int64_t> deadline_ns{std::numeric_limits<std::int64_t>::max()};
  JobChunk* chunk = nullptr;
  std::size_t index = 0;
  int attempt = 0;
  std::chrono::steady_clock::time_point first_start;
  JobChunk* orphan = nullptr;  // the rest of an abandoned worker's chunk, run first
  // Results of the current chunk's jobs not yet handed to its batch. Written by the worker
  // while not kRunning; taken by the monitor once it has abandoned the worker.
  batch::ResultBuffer results;
  // A Redis pool's results go to Redis on this worker's own connection (made when first used).
  std::unique_ptr<redis::Recorder> recorder;
  // Results of the current Redis chunk's jobs, recorded together at its end (a failure at
  // once). Lost if the worker is abandoned: their entries stay pending and run again.
  std::vector<RemoteResult> remote_results;
  std::thread thread;
};

}  // namespace barista::pool
