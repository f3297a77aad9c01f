// A pool's housekeeping thread: the group commit of results, the end of a storage failure, and
// workers stuck past their deadline (abandoned and replaced).
#include "daemon/pool/pool.hpp"
#include "daemon/pool/tuning.hpp"
#include "daemon/pool/worker.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::pool {
namespace {

using Clock = std::chrono::steady_clock;
using namespace tuning;

}  // namespace

void Pool::monitor_loop() {
  std::unique_lock lock(monitor_mutex_);
  last_tick_ns_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  while (!monitor_cv_.wait_for(lock, kMonitorTick, [&] { return stopping_.load(); })) {
    last_tick_ns_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    std::vector<std::shared_ptr<batch::Batch>> batches;
    {
      std::lock_guard pool_lock(mutex_);
      batches = active_;
    }
    // Group commit: one fsync per batch per tick, however many results arrived.
    std::string failure;
    for (const auto& b : batches) {
      if (!b->flush(true) && failure.empty()) {
        failure = b->write_error();
      }
    }
    if (!failure.empty()) {
      note_write_failure(failure);
    } else if (storage_failing_.load() &&
               Clock::now().time_since_epoch().count() - last_failure_ns_.load() >
                   std::chrono::nanoseconds(kStorageRetry).count()) {
      note_write_success();
    }
    check_stuck_workers();
    std::lock_guard pool_lock(mutex_);
    if (retire_ > 0) {
      idle_.wake_all();  // a worker that is to leave may have been busy at the first wake-up
    }
  }
}

void Pool::check_stuck_workers() {
  const auto now = Clock::now();
  const auto limit = (now - kAbandonGrace).time_since_epoch().count();
  std::vector<std::shared_ptr<batch::Batch>> to_finish;  // finished outside the lock
  std::unique_lock lock(mutex_);
  for (auto& worker : workers_) {
    if (worker->state.load(std::memory_order_acquire) != Worker::kRunning ||
        worker->deadline_ns.load(std::memory_order_relaxed) >= limit) {
      continue;
    }
    int expected = Worker::kRunning;
    if (!worker->state.compare_exchange_strong(expected, Worker::kAbandoned,
                                               std::memory_order_acq_rel)) {
      continue;  // it returned just now
    }
    // From here on the stuck thread writes nothing of its own: what it published before it
    // started the attempt is ours to read.
    JobChunk* chunk = worker->chunk;
    abandoned_.fetch_add(1, std::memory_order_relaxed);
    auto b = chunk->batch;  // null for a Redis pool's chunk
    // The results of the chunk's jobs that ended before this one.
    const auto earlier = worker->results.size();
    if (b) {
      b->commit(worker->results);
    }
    const std::string id(chunk->id(worker->index));
    spdlog::error(
        "pool '{}': job '{}' of batch '{}' overran its deadline by more than {} s: worker "
        "abandoned and replaced",
        name_, id, chunk->owner().id(), kAbandonGrace.count());
    // The jobs of the chunk not yet started go to the replacement worker, copied: the stuck
    // thread may still read its own job from the old chunk.
    JobChunk* rest = nullptr;
    if (chunk->next < chunk->size()) {
      rest = take_free_chunk();
      rest->batch = b;
      rest->remote = chunk->remote;
      for (std::size_t i = chunk->next; i < chunk->size(); ++i) {
        rest->add(chunk->id(i), chunk->payload(i), chunk->line(i), chunk->tag(i));
      }
      queued_.fetch_add(rest->size(), std::memory_order_relaxed);  // waiting again
    }
    const double ms = std::chrono::duration<double, std::milli>(now - worker->first_start).count();
    const auto timeout_ms = worker->settings->config.timeout.value_or(std::chrono::milliseconds(0));
    const auto why = fmt::format(
        "deadline of {} ms exceeded; the processor did not return within {} s after it and its "
        "worker was abandoned",
        timeout_ms.count(), kAbandonGrace.count());
    if (b) {
      b->record(id, batch::JobStatus::kTimeout, worker->attempt, ms, why);
    } else {
      // One try: when Redis is down the entry stays pending and is taken over later. mutex_ is
      // held: the settings are handed over (settings() would lock it again).
      record_remote(*settings_, monitor_recorder_, *chunk,
                    {{worker->index, batch::JobStatus::kTimeout, worker->attempt, ms, why}},
                    /*retry=*/false);
    }
    if (chunk->shared_owners.fetch_add(1, std::memory_order_acq_rel) == 1) {
      delete chunk;  // the stuck thread has returned and let go already
    }
    worker->thread.detach();
    --workers_running_;
    try {
      worker =
          make_worker_locked(settings_->library->create(settings_->config.plugin_config), rest);
    } catch (const std::exception& e) {
      spdlog::error("pool '{}': cannot create a processor for a replacement worker: {}", name_,
                    e.what());
      if (rest != nullptr) {
        queued_.fetch_sub(rest->size(), std::memory_order_relaxed);
        if (b) {
          for (std::size_t i = 0; i < rest->size(); ++i) {
            b->record(rest->id(i), batch::JobStatus::kFailed, 0, 0.0,
                      fmt::format("no worker could take the job: {}", e.what()));
          }
        }
        const auto n = rest->size();
        recycle(rest);  // a Redis pool's entries stay pending: taken over later
        if (b && b->release_pending(n)) {
          to_finish.push_back(b);
        }
      }
    }
    if (b && b->release_pending(earlier + 1)) {
      to_finish.push_back(b);
    }
  }
  lock.unlock();
  for (const auto& b : to_finish) {
    finish_batch(b);
  }
}

}  // namespace barista::pool
