// Reading a pull source (the spool's batches): done by whichever worker finds the queue empty.
// There is no reader thread: with more workers than cores, a dedicated one competed with the
// workers for the CPU, and every chunk it pushed woke a worker (16 workers took 2.9 times as long
// as 2 for a batch of tiny jobs). Here the worker that would otherwise sleep reads: a chunk for
// itself, then enough to fill the queue, waking one sleeping worker per chunk it queues. The
// others run meanwhile; one reads at a time.
//
//   worker: queue empty -> read_for_worker() -> its own chunk + the queue refilled -> run
#include "daemon/pool/pool.hpp"
#include "daemon/pool/tuning.hpp"

#include <algorithm>

namespace barista::pool {
namespace {

using namespace tuning;

}  // namespace

bool Pool::may_read() const noexcept {
  return (source_->readable() || has_spare_.load(std::memory_order_acquire)) &&
         !held_.load(std::memory_order_acquire) && !stopping_.load(std::memory_order_acquire);
}

bool Pool::someone_may_read() const noexcept {
  return may_read() && !reading_.load(std::memory_order_acquire);
}

std::size_t Pool::chunk_size() const {
  const auto per_job = job_ns_.load(std::memory_order_relaxed);
  if (per_job <= 0) {
    return 1;  // nothing measured yet: hand out single jobs until we know
  }
  return std::clamp<std::size_t>(static_cast<std::size_t>(kChunkTargetNs / per_job), 1, max_chunk_);
}

JobChunk* Pool::read_for_worker() {
  if (!may_read()) {
    return nullptr;
  }
  std::unique_lock lock(reader_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) {
    return nullptr;  // another worker reads: what it queues wakes this one
  }
  reading_.store(true, std::memory_order_release);
  sync_queue_settings();
  // The chunk read last time after the queue was full: older than anything still to read.
  JobChunk* own = std::exchange(spare_, nullptr);
  has_spare_.store(false, std::memory_order_release);
  while (may_read()) {
    // The pool's backpressure: `queue` jobs, in as many chunks as keep every worker busy. Once
    // they wait, one chunk more is read and kept (so the end of an input is seen as soon as the
    // rest of it is queued), and the next worker to find the queue empty starts with it.
    const bool full =
        own != nullptr && (queued_to_run() >= queue_jobs_ || queue_.size() >= queue_chunks_);
    JobChunk* chunk = source_->next_chunk(chunk_size());
    if (chunk == nullptr) {
      break;  // nothing more to read now
    }
    queued_.fetch_add(chunk->size(), std::memory_order_relaxed);
    chunk->queued_at = std::chrono::steady_clock::now();
    if (own == nullptr) {
      own = chunk;
    } else if (full) {
      spare_ = chunk;
      has_spare_.store(true, std::memory_order_release);
      break;
    } else {
      try {
        push(chunk);  // wakes a sleeping worker, if one waits; never full (checked above)
      } catch (const tbb::user_abort&) {
        recycle_unread(chunk);  // stopping
        break;
      }
    }
  }
  reading_.store(false, std::memory_order_release);
  lock.unlock();
  source_->after_read();
  if (own != nullptr && someone_may_read()) {
    idle_.notify();  // more to read: a sleeping worker reads next
  }
  return own;
}

void Pool::recycle_unread(JobChunk* chunk) {
  // Its jobs have no result: they run after the next start, as a stopped pool's queue does.
  queued_.fetch_sub(chunk->size(), std::memory_order_relaxed);
  recycle(chunk);
}

}  // namespace barista::pool
