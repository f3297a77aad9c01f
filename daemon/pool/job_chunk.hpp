#pragma once

#include "daemon/batch/batch_core.hpp"

#include <atomic>
#include <chrono>
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
    std::uint32_t key_length = 0;  // the job's key (empty: none given), behind the tag
  };

  // Made by the pool's source, of its own type: its sink's writers know which (static_cast).
  std::shared_ptr<batch::BatchCore> batch;
  std::string arena;
  std::vector<Entry> jobs;
  std::size_t next = 0;  // the next job to run; advanced only by the chunk's owner
  /// A job the pool's KeyGate set aside (a one-job chunk) carries where it had got to: it goes
  /// on from there when its key may start again.
  struct Progress {
    int attempts = 0;   // run so far, throttled ones included
    int throttles = 0;  // of them, throttled
    int crashes = 0;    // of them, ended by their worker process's crash (isolation: process)
    std::chrono::steady_clock::duration throttled{};  // time told to wait, all throttles
    std::chrono::steady_clock::time_point first_start{};
    bool started = false;  // first_start is set
  };
  Progress progress;
  std::chrono::steady_clock::time_point queued_at{};  // read (or handed over) to be run
  bool set_aside = false;                             // a KeyGate's one-job chunk
  bool admitted = false;  // its key's slot is taken for it already (KeyGate::take_ready)
  // When the worker running this chunk is abandoned, the stuck thread and the pool's monitor
  // both still read the chunk: each adds one when it lets go; the second one deletes it.
  std::atomic<int> shared_owners{0};

  void add(std::string_view id, std::string_view payload, std::uint64_t line,
           std::string_view tag = {}, std::string_view key = {}) {
    jobs.push_back({arena.size(), static_cast<std::uint32_t>(id.size()), payload.size(), line,
                    static_cast<std::uint32_t>(tag.size()),
                    static_cast<std::uint32_t>(key.size())});
    arena.append(id);
    arena.append(payload);
    arena.append(tag);
    arena.append(key);
  }
  /// Job `i` of `from`, with all it carries.
  void add_copy(const JobChunk& from, std::size_t i) {
    add(from.id(i), from.payload(i), from.line(i), from.tag(i), from.key(i));
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
  [[nodiscard]] std::string_view key(std::size_t i) const {
    return {arena.data() + jobs[i].offset + jobs[i].id_length + jobs[i].payload_length +
                jobs[i].tag_length,
            jobs[i].key_length};
  }
  [[nodiscard]] std::size_t size() const noexcept { return jobs.size(); }
  void reset() {
    batch.reset();
    arena.clear();
    jobs.clear();
    next = 0;
    progress = {};
    queued_at = {};
    set_aside = false;
    admitted = false;
    shared_owners.store(0, std::memory_order_relaxed);
  }
};

}  // namespace barista::pool
