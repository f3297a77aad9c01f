#pragma once

#include "daemon/pool/job_chunk.hpp"
#include "daemon/pool/status.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace barista::pool {

class Pool;

/// Where a pool's jobs come from: the spool's batches (daemon/spool/) or a Redis stream
/// (daemon/redis/). The engine (Pool) knows no files and no Redis; it asks its source for
/// chunks of jobs, or the source hands them over itself.
///
/// A source is read in one of two ways. A *pull* source says readable() and is read by the
/// workers themselves: the worker that finds the queue empty calls next_chunk() (one worker at
/// a time) and the engine fills the queue with what it returns. A *push* source runs its own
/// thread (started by start()) and hands chunks over with Pool::feed().
class Source {
 public:
  Source() = default;
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;
  virtual ~Source() = default;

  /// Called once, by the pool's constructor: the engine the source feeds.
  virtual void attach(Pool& pool) = 0;
  /// Starts what the source runs on its own (threads). Called by Pool::start().
  virtual void start() {}
  /// Ends it: called by Pool::stop() once Pool::stopping() is true, before the workers leave.
  virtual void stop() {}

  /// A pull source: input waits that next_chunk() may return now. Any thread; cheap.
  [[nodiscard]] virtual bool readable() const noexcept { return false; }
  /// A pull source: the next chunk of at most `want` jobs (of one batch, `batch` set), or null
  /// when there is none now. Called by one worker at a time.
  virtual JobChunk* next_chunk(std::size_t want) {
    static_cast<void>(want);
    return nullptr;
  }
  /// Called by the worker that read, after it let go of the reading: what next_chunk() left
  /// to be done outside it (batches read through may end).
  virtual void after_read() {}

  /// The end of a graceful stop that timed out: running attempts are to stop (every batch's
  /// token raised; their results are discarded).
  virtual void interrupt() = 0;
  /// A word on the backend for `status` (PoolStatus::redis); empty when there is none.
  [[nodiscard]] virtual std::string state() const { return {}; }
  /// Why the backend's storage fails now (PoolStatus::storage_error); empty while it works.
  [[nodiscard]] virtual std::string storage_error() const { return {}; }
  /// Storage calls of the backend that failed, since the pool started.
  [[nodiscard]] virtual std::uint64_t storage_errors() const { return 0; }

  // What the daemon asks of a pool's batches at start and for `status`.

  /// A file NAME appeared in the pool's inbox: claims it; the batch id, or nullopt when it is not
  /// taken as a batch. Throws std::system_error when it cannot be claimed now.
  virtual std::optional<std::string> claim(std::string_view name) = 0;
  /// Resumes what an earlier run of the daemon left unfinished.
  virtual void recover() = 0;
  /// After a crash: runs the jobs that were in flight, each alone; returns how many ran.
  virtual std::size_t run_suspects() { return 0; }
  /// The batches in flight here, for `status`.
  [[nodiscard]] virtual std::vector<BatchStatus> batches() const { return {}; }
};

}  // namespace barista::pool
