#pragma once

// The pool's fixed tuning, shared by its files. Each number says why it is what it is.

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace barista::pool::tuning {

// A chunk is sized so that running it takes about this long: large enough that the queue is
// touched rarely when jobs are tiny, small enough that slow jobs still spread over all workers.
inline constexpr std::int64_t kChunkTargetNs = 1'000'000;
// And never more jobs than this, nor more than half the queue (apply_queue_settings). Tiny jobs
// (echo: under 0.1 us) want chunks far larger than that target allows for: a 1,000,000-job
// batch on 16 workers took 0.139 s with chunks of 256 and 0.103 s with 1,024, as long as on 2
// workers (tests/bench/tools/ab_daemons.py, queue 1024). The bytes of a chunk stay bounded.
inline constexpr std::size_t kMaxChunkJobs = 1024;
inline constexpr std::size_t kMaxChunkBytes = 256UL * 1024;
// Batches read at once, round-robin, by a pool's intake; the others wait their turn.
inline constexpr std::size_t kMaxOpenBatches = 4;
inline constexpr auto kMonitorTick = std::chrono::milliseconds(50);
inline constexpr auto kAbandonGrace = std::chrono::seconds(1);
// A processor that runs its jobs in a worker process ends an overrun itself (a cancel message,
// SIGTERM 1 s later, SIGKILL 2 s after that): its worker is abandoned only past this, a safety
// net that should never be reached.
inline constexpr auto kHostedAbandonGrace = std::chrono::seconds(15);
// A frame (the jobs a worker hands its worker process at once) is at most the rest of a chunk.
// and its ids and payloads at most this many bytes (barista-worker takes up to 16 MiB).
inline constexpr std::size_t kMaxFrameJobs = kMaxChunkJobs;
inline constexpr std::size_t kMaxFrameBytes = 8UL << 20;
// Batches claimed ahead of the workers at most; more wait in the inbox. Each claimed batch
// holds a descriptor and some memory: a flood of files must not take them all.
inline constexpr std::size_t kMaxClaimed = 1024;
// While storage fails, how often writing and claiming are tried again: kStorageRetry at first,
// doubling up to kStorageRetryMax, so that an outage's end is seen within a few seconds.
inline constexpr auto kStorageRetry = std::chrono::seconds(1);
inline constexpr auto kStorageRetryMax = std::chrono::seconds(4);
/// How long an idle worker sleeps before it looks at its pool again unwoken: a safety net only,
/// every change it must see (work, a stop, a retirement) wakes it.
inline constexpr auto kIdleRecheck = std::chrono::milliseconds(100);

}  // namespace barista::pool::tuning
