// A spool pool's intake: the input files of its batches, read into chunks of jobs by whichever
// worker finds the queue empty. There is no reader thread: with more workers than cores, a
// dedicated one competed with the workers for the CPU, and every chunk it pushed woke a worker
// (16 workers took 2.9 times as long as 2 for a batch of tiny jobs). Here the worker that would
// otherwise sleep reads: a chunk for itself, then enough to fill the queue, waking one sleeping
// worker per chunk it queues. The others run meanwhile; one reads at a time.
//
//   worker: queue empty -> read_for_worker() -> its own chunk + the queue refilled -> run
#include "daemon/pool/intake.hpp"

#include "daemon/pool/tuning.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::pool {
namespace {

using namespace tuning;

}  // namespace

bool Pool::may_read() const noexcept {
  return !redis_ && readable_.load(std::memory_order_acquire) &&
         !held_.load(std::memory_order_acquire) && !storage_failing_.load() &&
         !stopping_.load(std::memory_order_acquire);
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
  std::unique_lock lock(intake_->mutex, std::try_to_lock);
  if (!lock.owns_lock()) {
    return nullptr;  // another worker reads: what it queues wakes this one
  }
  reading_.store(true, std::memory_order_release);
  std::vector<std::shared_ptr<batch::Batch>> read_through;  // ended once the lock is let go
  auto& in = *intake_;
  // The chunk read last time after the queue was full: older than anything still to read.
  JobChunk* own = std::exchange(in.spare, nullptr);
  open_waiting_batches();
  while (may_read()) {
    // The pool's backpressure: `queue` jobs, in as many chunks as keep every worker busy. Once
    // they wait, one chunk more is read and kept (so the end of an input is seen as soon as the
    // rest of it is queued), and the next worker to find the queue empty starts with it.
    const bool full = own != nullptr && (queued_.load(std::memory_order_relaxed) >= queue_jobs_ ||
                                         queue_.size() >= queue_chunks_);
    JobChunk* chunk = read_chunk(read_through);
    if (chunk == nullptr) {
      break;  // nothing more to read now
    }
    if (own == nullptr) {
      own = chunk;
    } else if (full) {
      in.spare = chunk;
      readable_.store(true, std::memory_order_release);
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
  for (const auto& b : read_through) {
    b->mark_read_all();
    if (b->release_pending()) {
      finish_batch(b);
    }
  }
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

void Pool::open_waiting_batches() {
  auto& in = *intake_;
  std::lock_guard lock(mutex_);
  if (in.generation != settings_->generation) {
    in.generation = settings_->generation;
    in.max_job_bytes = settings_->config.max_job_bytes;
    apply_queue_settings(settings_->config);  // a reload changed `queue` or `workers`
  }
  while (in.open.size() < kMaxOpenBatches && !waiting_.empty()) {
    auto w = std::move(waiting_.front());
    waiting_.pop_front();
    auto b = w.batch;
    OpenBatch ob{b, nullptr, nullptr, std::move(w.recorded), std::move(w.crashes)};
    std::string why;
    const int fd = batch::open_batch_input(b->input_path(), why);
    if (fd < 0) {
      spdlog::error("batch '{}' (pool '{}'): cannot open its input {}: {}", b->id(), name_,
                    b->input_path().string(), why);
    } else {
      ob.reader =
          std::make_unique<batch::LineReader>(fd, in.max_job_bytes, simdjson::SIMDJSON_PADDING);
      ob.parser = std::make_unique<batch::JobParser>(b->info().format, in.max_job_bytes);
    }
    in.open.push_back(std::move(ob));
  }
  if (in.open.empty() && waiting_.empty() && in.spare == nullptr) {
    readable_.store(false, std::memory_order_release);  // add_batch() raises it again
  }
}

JobChunk* Pool::read_chunk(std::vector<std::shared_ptr<batch::Batch>>& read_through) {
  auto& in = *intake_;
  JobChunk* chunk = take_free_chunk();
  while (chunk->size() == 0 && !in.open.empty() && !stopping_.load(std::memory_order_relaxed)) {
    in.turn %= in.open.size();
    if (feed_one(in.open[in.turn], *chunk)) {
      ++in.turn;
      continue;
    }
    read_through.push_back(std::move(in.open[in.turn].batch));
    in.open.erase(in.open.begin() + static_cast<std::ptrdiff_t>(in.turn));
    open_waiting_batches();
  }
  if (chunk->size() == 0) {
    recycle(chunk);
    return nullptr;
  }
  return chunk;
}

bool Pool::feed_one(OpenBatch& open, JobChunk& chunk_ref) {
  JobChunk* chunk = &chunk_ref;
  if (!open.reader) {
    return false;
  }
  batch::Batch& b = *open.batch;
  const std::size_t want = chunk_size();
  const auto max_crashes = settings()->config.max_crashes;
  bool more = true;
  batch::Line line;
  // Jobs read, added to the batch's count once per chunk rather than once each (an atomic
  // add), and before any result is recorded, so that the count never trails the results.
  std::uint64_t jobs_read = 0;
  const auto count_read = [&] {
    if (jobs_read > 0) {
      b.add_jobs_read(std::exchange(jobs_read, 0));
    }
  };
  while (chunk->size() < want && chunk->arena.size() < kMaxChunkBytes) {
    try {
      if (!open.reader->next(line)) {
        more = false;
        break;
      }
    } catch (const std::exception& e) {
      spdlog::error(
          "batch '{}' (pool '{}'): reading its input failed after line {}: {}; the rest "
          "of the file is not read",
          b.id(), name_, line.number, e.what());
      more = false;
      break;
    }
    auto parsed = open.parser->parse(line);
    if (parsed.skip) {
      continue;
    }
    if (!open.recorded.empty()) {
      auto it = open.recorded.find(std::string(parsed.id));
      if (it != open.recorded.end()) {
        if (--it->second == 0) {
          open.recorded.erase(it);
        }
        continue;  // it has its result from an earlier run
      }
    }
    ++jobs_read;
    if (!open.crashes.empty()) {
      if (auto it = open.crashes.find(line.number);
          it != open.crashes.end() && it->second.given_up(max_crashes)) {
        const auto crashes = it->second.crashes;
        spdlog::error("batch '{}' (pool '{}'): job '{}' crashed the daemon {} times: not run again",
                      b.id(), name_, parsed.id, crashes);
        count_read();
        b.record(parsed.id, batch::JobStatus::kFailed, static_cast<int>(crashes), 0.0,
                 fmt::format("crashed the daemon {} times", crashes));
        continue;
      }
    }
    if (!parsed.valid) {
      count_read();
      b.record(parsed.id, batch::JobStatus::kInvalid, 0, 0.0, parsed.error);
      continue;
    }
    if (b.cancelled()) {
      count_read();
      b.record(parsed.id, batch::JobStatus::kCancelled, 0, 0.0,
               "batch cancelled before the job started");
      continue;
    }
    chunk->add(parsed.id, parsed.payload, line.number);
  }
  count_read();
  if (chunk->size() > 0) {
    chunk->batch = open.batch;
    b.add_pending(chunk->size());
    queued_.fetch_add(chunk->size(), std::memory_order_relaxed);
  }
  return more;
}

}  // namespace barista::pool
