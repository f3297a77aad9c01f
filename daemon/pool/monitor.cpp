// A pool's housekeeping thread: its sink's tick (the spool's group commit), and workers stuck
// past their deadline (abandoned and replaced).
#include "daemon/pool/pool.hpp"
#include "daemon/pool/tuning.hpp"
#include "daemon/pool/worker.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::pool {
namespace {

using RealTime = std::chrono::steady_clock;  // the monitor's own liveness (clock.hpp)
using namespace tuning;

}  // namespace

void Pool::monitor_loop() {
  std::unique_lock lock(monitor_mutex_);
  last_tick_ns_.store(RealTime::now().time_since_epoch().count(), std::memory_order_relaxed);
  while (!monitor_cv_.wait_for(lock, kMonitorTick, [&] { return stopping_.load(); })) {
    last_tick_ns_.store(RealTime::now().time_since_epoch().count(), std::memory_order_relaxed);
    sink_->tick();
    check_stuck_workers();
    gate_.prune();
    if (gate_.has_ready()) {
      idle_.notify();  // a job set aside may start now (a throttle has ended, say)
    }
    std::lock_guard pool_lock(mutex_);
    if (retire_ > 0) {
      idle_.wake_all();  // a worker that is to leave may have been busy at the first wake-up
    }
  }
}

void Pool::check_stuck_workers() {
  const auto limit = (clock_.now() - kAbandonGrace).time_since_epoch().count();
  std::vector<std::shared_ptr<Worker>> stuck;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(workers_, [&](const std::shared_ptr<Worker>& worker) {
      if (worker->state.load(std::memory_order_acquire) != Worker::kRunning ||
          worker->deadline_ns.load(std::memory_order_relaxed) >= limit) {
        return false;
      }
      int expected = Worker::kRunning;
      if (!worker->state.compare_exchange_strong(expected, Worker::kAbandoned,
                                                 std::memory_order_acq_rel)) {
        return false;  // it returned just now
      }
      worker->thread.detach();
      --workers_running_;
      stuck.push_back(worker);
      return true;
    });
  }
  for (const auto& worker : stuck) {
    abandoned_.fetch_add(1, std::memory_order_relaxed);
    replace_abandoned(worker);
  }
}

void Pool::replace_abandoned(const std::shared_ptr<Worker>& worker) {
  // From here on the stuck thread writes nothing of its own: what it published before it
  // started the attempt is ours to read, and its writer ours to use.
  JobChunk* chunk = worker->chunk;
  const std::string id(chunk->id(worker->index));
  spdlog::error(
      "pool '{}': job '{}' of batch '{}' overran its deadline by more than {} s: worker "
      "abandoned and replaced",
      name_, id, chunk->batch->id(), kAbandonGrace.count());
  // The jobs of the chunk not yet started go to the replacement worker, copied: the stuck
  // thread may still read its own job from the old chunk.
  JobChunk* rest = nullptr;
  if (chunk->next < chunk->size()) {
    rest = take_free_chunk();
    rest->batch = chunk->batch;
    for (std::size_t i = chunk->next; i < chunk->size(); ++i) {
      rest->add(chunk->id(i), chunk->payload(i), chunk->line(i), chunk->tag(i));
    }
    queued_.fetch_add(rest->size(), std::memory_order_relaxed);  // waiting again
  }
  const double ms =
      std::chrono::duration<double, std::milli>(clock_.now() - worker->first_start).count();
  const auto timeout_ms = worker->settings->config.timeout.value_or(std::chrono::milliseconds(0));
  worker->writer->add(*chunk, worker->index, batch::JobStatus::kTimeout, worker->attempt, ms,
                      fmt::format("deadline of {} ms exceeded; the processor did not return "
                                  "within {} s after it and its worker was abandoned",
                                  timeout_ms.count(), kAbandonGrace.count()),
                      0);
  if (worker->holds_slot) {
    gate_.done(worker->slot_key);  // its key's slot: the stuck thread never gives it back
  }
  // One try: the monitor does not wait for a backend that is down (a Redis job then stays
  // pending there and is taken over later).
  hand_over_failure(*worker, *chunk, /*patient=*/false);
  if (chunk->shared_owners.fetch_add(1, std::memory_order_acq_rel) == 1) {
    delete chunk;  // the stuck thread has returned and let go already
  }
  const auto current = settings();
  plugin::ProcessorHandle processor;
  try {
    processor = current->library->create(current->config.plugin_config);
  } catch (const std::exception& e) {
    spdlog::error("pool '{}': cannot create a processor for a replacement worker: {}", name_,
                  e.what());
    if (rest != nullptr) {
      // Nothing is lost: the rest gets its results here (the pool runs one worker short).
      for (std::size_t i = 0; i < rest->size(); ++i) {
        worker->writer->add(*rest, i, batch::JobStatus::kFailed, 0, 0.0,
                            fmt::format("no worker could take the job: {}", e.what()), 0);
      }
      worker->writer->flush(*rest, /*patient=*/false);
      queued_.fetch_sub(rest->size(), std::memory_order_relaxed);
      recycle(rest);
    }
    return;
  }
  std::lock_guard lock(mutex_);
  spawn_worker_locked(std::move(processor), rest);
}

}  // namespace barista::pool
