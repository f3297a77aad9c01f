#pragma once

#include "daemon/batch/result_buffer.hpp"
#include "daemon/pool/job_chunk.hpp"

#include <cstddef>
#include <memory>
#include <string_view>

namespace barista::pool {

/// One worker's way to record results (Sink::writer()): it gathers the results of the chunk the
/// worker runs and hands them to their batch together. Used by one thread at a time: its worker,
/// or the pool's monitor once it has abandoned that worker (only running() and ran() may then
/// still be called by the stuck thread: they must touch nothing add() and flush() do).
class ResultWriter {
 public:
  ResultWriter() = default;
  ResultWriter(const ResultWriter&) = delete;
  ResultWriter& operator=(const ResultWriter&) = delete;
  virtual ~ResultWriter() = default;

  /// The attempt of job `index` of `chunk` is about to start (a crash journal marks it).
  virtual void running(const JobChunk& chunk, std::size_t index) {
    static_cast<void>(chunk);
    static_cast<void>(index);
  }
  /// That attempt has returned.
  virtual void ran() {}
  /// The one result of job `index` of `chunk`, gathered until flush(). `throttled`: how many of
  /// its `attempts` were throttles.
  virtual void add(const JobChunk& chunk, std::size_t index, batch::JobStatus status, int attempts,
                   double ms, std::string_view text, int throttled) = 0;
  /// Hands the gathered results (all of `chunk`'s batch) over; a batch whose last result this
  /// was ends. `patient`: while the backend cannot take them, keep trying until the pool stops.
  virtual void flush(const JobChunk& chunk, bool patient) = 0;
};

/// Where a pool's results go: `results.jsonl` with group commit (daemon/spool/), or Redis
/// (daemon/redis/). Each worker records through its own writer.
class Sink {
 public:
  Sink() = default;
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  virtual ~Sink() = default;

  /// A writer for one worker.
  virtual std::unique_ptr<ResultWriter> writer() = 0;
  /// Called by the pool's monitor at every tick (a group commit, say).
  virtual void tick() {}
  /// Called last by Pool::stop(), once no worker records any more.
  virtual void close() {}
};

}  // namespace barista::pool
