#pragma once

#include "daemon/batch/batch.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace barista::pool {

/// A batch of a pool shared through Redis, as this daemon sees it: its results and counts live
/// in Redis; here it is an id and a cancellation token (raised by a cancel message from Redis).
class RemoteBatch final : public batch::BatchCore {
 public:
  using BatchCore::BatchCore;
};

/// The result of a Redis pool's job, gathered by its worker until the chunk's results are
/// recorded together.
struct RemoteResult {
  std::size_t index = 0;  // in its chunk
  batch::JobStatus status = batch::JobStatus::kOk;
  int attempts = 0;
  double ms = 0;
  std::string text;
};

/// Up to a few dozen jobs of one batch, handed through the pool's queue as one item: the queue
/// and the batch's reference count are touched once per chunk, not once per job. The bytes of
/// all ids and payloads share one arena; chunks are recycled so the arena's memory is reused.
struct JobChunk {
  struct Entry {
    std::size_t offset = 0;  // id at offset, payload right behind it
    std::uint32_t id_length = 0;
    std::size_t payload_length = 0;
    std::uint64_t line = 0;        // physical line in the batch's input; deliveries for a Redis job
    std::uint32_t tag_length = 0;  // the Redis stream entry's id, behind the payload
  };

  std::shared_ptr<batch::Batch> batch;  // a spool batch's jobs, or
  std::shared_ptr<RemoteBatch> remote;  // those of a batch in Redis
  std::string arena;
  std::vector<Entry> jobs;
  std::size_t next = 0;  // the next job to run; advanced only by the chunk's owner
  // When the worker running this chunk is abandoned, the stuck thread and the pool's monitor
  // both still read the chunk: each adds one when it lets go; the second one deletes it.
  std::atomic<int> shared_owners{0};

  void add(std::string_view id, std::string_view payload, std::uint64_t line,
           std::string_view tag = {}) {
    jobs.push_back({arena.size(), static_cast<std::uint32_t>(id.size()), payload.size(), line,
                    static_cast<std::uint32_t>(tag.size())});
    arena.append(id);
    arena.append(payload);
    arena.append(tag);
  }
  [[nodiscard]] std::string_view id(std::size_t i) const {
    return {arena.data() + jobs[i].offset, jobs[i].id_length};
  }
  [[nodiscard]] std::string_view payload(std::size_t i) const {
    return {arena.data() + jobs[i].offset + jobs[i].id_length, jobs[i].payload_length};
  }
  [[nodiscard]] std::uint64_t line(std::size_t i) const { return jobs[i].line; }
  [[nodiscard]] std::string_view tag(std::size_t i) const {
    return {arena.data() + jobs[i].offset + jobs[i].id_length + jobs[i].payload_length,
            jobs[i].tag_length};
  }
  /// The batch the chunk's jobs belong to, wherever its results are kept.
  [[nodiscard]] batch::BatchCore& owner() const {
    return remote ? static_cast<batch::BatchCore&>(*remote) : *batch;
  }
  [[nodiscard]] std::size_t size() const noexcept { return jobs.size(); }
  void reset() {
    batch.reset();
    remote.reset();
    arena.clear();
    jobs.clear();
    next = 0;
    shared_owners.store(0, std::memory_order_relaxed);
  }
};

}  // namespace barista::pool
