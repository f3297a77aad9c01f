// A spool pool's results: each worker gathers its chunk's results in a buffer and hands them to
// the batch in one step (Batch::commit: counts, metrics, the cancel_all reaction); the monitor's
// tick writes and fsyncs each batch's results once (a group commit); a batch whose last result
// was recorded ends (summary.json, the folder moved to done/ or failed/).
#include "daemon/pool/tuning.hpp"
#include "daemon/spool/spool_backend.hpp"

#include <spdlog/spdlog.h>

namespace barista::spool {
namespace {

using pool::tuning::kMaxClaimed;

}  // namespace

/// One worker's results, and its slot in the crash journal (held by the writer itself: a stuck
/// thread the pool left behind may still clear it after the pool is gone).
class SpoolBackend::Writer final : public pool::ResultWriter {
 public:
  explicit Writer(SpoolBackend& backend)
      : backend_(backend),
        running_(backend.running_),
        slot_(running_ ? running_->acquire() : batch::RunningJobs::kNoSlot) {}
  ~Writer() override {
    if (running_) {
      running_->release(slot_);
    }
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void running(const pool::JobChunk& chunk, std::size_t index) override {
    if (running_) {
      running_->mark(slot_, backend_.name_, chunk.batch->id(), chunk.line(index));
    }
  }
  void ran() override {
    if (running_) {
      running_->clear(slot_);
    }
  }
  void add(const pool::JobChunk& chunk, std::size_t index, batch::JobStatus status, int attempts,
           double ms, std::string_view text, int throttled) override {
    results_.add(chunk.id(index), status, attempts, ms, text, throttled);
  }
  void flush(const pool::JobChunk& chunk,
             bool /*patient: a buffer in memory always takes them*/) override {
    const auto n = results_.size();
    if (n == 0) {
      return;
    }
    auto b = std::static_pointer_cast<batch::Batch>(chunk.batch);
    b->commit(results_);
    if (b->release_pending(n)) {
      backend_.finish_batch(b);
    }
  }

 private:
  SpoolBackend& backend_;
  std::shared_ptr<batch::RunningJobs> running_;
  int slot_;
  batch::ResultBuffer results_;
};

std::unique_ptr<pool::ResultWriter> SpoolBackend::writer() {
  return std::make_unique<Writer>(*this);
}

void SpoolBackend::tick() {
  std::vector<std::shared_ptr<batch::Batch>> batches;
  {
    std::lock_guard lock(mutex_);
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
    note_storage_failure("cannot write results: " + failure);
  } else {
    retry_storage();  // while an outage lasts, at its pace
    retry_claims();
  }
}

void SpoolBackend::close() {
  std::vector<std::shared_ptr<batch::Batch>> batches;
  {
    std::lock_guard lock(mutex_);
    batches = active_;
  }
  for (const auto& b : batches) {
    if (!b->flush(true)) {
      spdlog::error(
          "batch '{}' (pool '{}'): writing results failed: {}; its jobs without a "
          "result run after the next start",
          b->id(), name_, b->write_error());
    }
  }
}

void SpoolBackend::finish_batch(const std::shared_ptr<batch::Batch>& b) {
  try {
    b->finish();
  } catch (const std::exception& e) {
    // Its summary is not written: the housekeeping tries again once results can be written.
    spdlog::error("batch '{}' (pool '{}'): cannot finish: {}", b->id(), name_, e.what());
    note_storage_failure(e.what());  // retried with the rest at the next retry round
    std::lock_guard lock(mutex_);
    unfinished_.push_back(b);
    return;
  }
  std::lock_guard lock(mutex_);
  std::erase(active_, b);
  if (inbox_backlog_ && active_.size() < kMaxClaimed / 2) {
    claimer_cv_.notify_one();
  }
}

}  // namespace barista::spool
