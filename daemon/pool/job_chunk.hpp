#pragma once

#include "daemon/batch/batch_core.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace barista::pool {

/// Up to 1,024 jobs of one batch, handed through the pool's queue as one item: the queue and the
/// batch's reference count are touched once per chunk, not once per job. The bytes of all ids
/// and payloads share one arena; chunks are recycled so the arena's memory is reused. `line` and
/// `tag` are the source's: a spool job's input line; a Redis job's deliveries and stream id.
struct JobChunk {
  struct Entry {
    std::size_t offset = 0;  // id at offset, payload right behind it
    std::uint32_t id_length = 0;
    std::size_t payload_length = 0;
    std::uint64_t line = 0;        // the source's: a line of the batch's input, say
    std::uint32_t tag_length = 0;  // the source's tag for the job, behind the payload
  };

  // Made by the pool's source, of its own type: its sink's writers know which (static_cast).
  std::shared_ptr<batch::BatchCore> batch;
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
  [[nodiscard]] std::size_t size() const noexcept { return jobs.size(); }
  void reset() {
    batch.reset();
    arena.clear();
    jobs.clear();
    next = 0;
    shared_owners.store(0, std::memory_order_relaxed);
  }
};

}  // namespace barista::pool
