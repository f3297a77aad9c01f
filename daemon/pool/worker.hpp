#pragma once

#include "daemon/plugin/plugin_library.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/pool/sink.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace barista::pool {

/// One worker thread, the processor it owns and the writer it records results with. The
/// fields the monitor reads to give a stuck job its result are written before `state` becomes
/// kRunning (release) and read after the monitor's compare-exchange to kAbandoned (acquire).
struct Pool::Worker {
  enum State : int { kIdle, kRunning, kAbandoned };

  Worker(plugin::ProcessorHandle p, std::unique_ptr<ResultWriter> w)
      : processor(std::move(p)), writer(std::move(w)) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker() = default;

  plugin::ProcessorHandle processor;
  // Results of the current chunk's jobs not yet handed over. Used by the worker while not
  // kRunning; by the monitor once it has abandoned the worker.
  std::unique_ptr<ResultWriter> writer;
  std::shared_ptr<const PoolSettings> settings;  // what the processor was made from
  std::atomic<int> state{kIdle};
  std::atomic<std::int64_t> deadline_ns{std::numeric_limits<std::int64_t>::max()};
  JobChunk* chunk = nullptr;
  std::size_t index = 0;
  int attempt = 0;
  std::chrono::steady_clock::time_point first_start;
  bool holds_slot = false;  // the running job holds its key's slot in the pool's gate
  std::string slot_key;
  JobChunk* orphan = nullptr;  // the rest of an abandoned worker's chunk, run first
  // A frame's jobs and results (run_frame), kept to reuse their memory.
  std::vector<plugin::FrameJob> frame_jobs;
  std::vector<std::string> frame_keys;
  std::vector<plugin::FrameResult> frame_results;
  std::thread thread;
};

}  // namespace barista::pool
