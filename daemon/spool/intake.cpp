// A spool pool's intake: the input files of its batches, read into chunks of jobs by the worker
// that found the pool's queue empty (pool/reader.cpp), round-robin over a few open batches.
// Jobs that get their result without running (invalid lines, a cancelled batch's, jobs that
// crashed the daemon too often) are recorded here as they are read.
#include "daemon/pool/tuning.hpp"
#include "daemon/spool/spool_backend.hpp"

#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::spool {
namespace {

using namespace pool::tuning;

}  // namespace

bool SpoolBackend::readable() const noexcept {
  return readable_.load(std::memory_order_acquire) && !storage_failing_.load();
}

void SpoolBackend::open_waiting_batches() {
  if (generation_ != pool_->generation()) {
    const auto settings = pool_->settings();
    generation_ = settings->generation;
    max_job_bytes_ = settings->config.max_job_bytes;
    max_crashes_ = settings->config.max_crashes;
  }
  // Inputs that cannot be opened (their own files in active/ID/, regular files when they were
  // claimed: the storage fails) wait, and are opened again once it works.
  std::vector<Waiting> unopened;
  std::string why_unopened;
  {
    std::lock_guard lock(mutex_);
    while (open_.size() < kMaxOpenBatches && !waiting_.empty()) {
      auto w = std::move(waiting_.front());
      waiting_.pop_front();
      std::string why;
      bool fault = false;
      const int fd = batch::open_batch_input(w.batch->input_path(), why, &fault);
      if (fd < 0 && fault) {
        why_unopened = fmt::format("cannot open the input of batch '{}': {}", w.batch->id(), why);
        unopened.push_back(std::move(w));
        continue;
      }
      auto b = w.batch;
      OpenBatch ob{b, nullptr, nullptr, std::move(w.recorded), std::move(w.crashes), 0};
      if (fd < 0) {
        // Gone, or not a regular file any more: the batch ends with the jobs it has.
        spdlog::error("batch '{}' (pool '{}'): cannot open its input {}: {}", b->id(), name_,
                      b->input_path().string(), why);
      } else {
        ob.reader =
            std::make_unique<batch::LineReader>(fd, max_job_bytes_, simdjson::SIMDJSON_PADDING);
        ob.parser = std::make_unique<batch::JobParser>(b->info().format, max_job_bytes_);
      }
      open_.push_back(std::move(ob));
    }
    waiting_.insert(waiting_.begin(), std::make_move_iterator(unopened.begin()),
                    std::make_move_iterator(unopened.end()));
    if (open_.empty() && waiting_.empty()) {
      readable_.store(false, std::memory_order_release);  // add_batch() raises it again
    }
  }
  if (!unopened.empty()) {
    note_storage_failure(why_unopened);
  }
}

pool::JobChunk* SpoolBackend::next_chunk(std::size_t want) {
  open_waiting_batches();
  pool::JobChunk* chunk = pool_->take_free_chunk();
  while (chunk->size() == 0 && !open_.empty() && !pool_->stopping()) {
    turn_ %= open_.size();
    auto& open = open_[turn_];
    if (feed_one(open, *chunk, want)) {
      // Fair shares: each open batch is read `weight` chunks in a row, then the next one.
      if (++open.read_in_turn >= open.batch->info().weight) {
        open.read_in_turn = 0;
        ++turn_;
      }
      continue;
    }
    {
      std::lock_guard lock(read_through_mutex_);
      read_through_.push_back(std::move(open_[turn_].batch));
    }
    open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(turn_));
    open_waiting_batches();
  }
  if (chunk->size() == 0) {
    pool_->recycle(chunk);
    return nullptr;
  }
  return chunk;
}

void SpoolBackend::after_read() {
  // Outside the reading: ending a batch writes and syncs files, and other workers may read
  // (and add to read_through_) meanwhile.
  std::vector<std::shared_ptr<batch::Batch>> ended;
  {
    std::lock_guard lock(read_through_mutex_);
    ended.swap(read_through_);
  }
  for (const auto& b : ended) {
    b->mark_read_all();
    if (b->release_pending()) {
      finish_batch(b);
    }
  }
}

bool SpoolBackend::feed_one(OpenBatch& open, pool::JobChunk& chunk, std::size_t want) {
  if (!open.reader) {
    return false;
  }
  batch::Batch& b = *open.batch;
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
  while (chunk.size() < want && chunk.arena.size() < kMaxChunkBytes) {
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
          it != open.crashes.end() && it->second.given_up(max_crashes_)) {
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
    chunk.add(parsed.id, parsed.payload, line.number, {}, parsed.key);
  }
  count_read();
  if (chunk.size() > 0) {
    chunk.batch = open.batch;
    b.add_pending(chunk.size());
  }
  return more;
}

}  // namespace barista::spool
