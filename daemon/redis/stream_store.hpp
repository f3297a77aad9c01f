#pragma once

// The Redis side of a pool shared by several daemons (docs/several-machines.md).
//
// Data model
// ----------
// Stream `cfg.stream` (default barista:POOL), consumer group `cfg.group`, created with
// `XGROUP CREATE stream group 0 MKSTREAM` (id 0, not $, so that jobs added before the group
// existed are still delivered). One entry per job, fields:
//     batch    the batch id
//     id       the job id (a string, unique in the batch)
//     payload  the job's input
//     key      the job's key, when its JSONL line gives one (docs/reference.md#keys)
// Each daemon reads as consumer `cfg.consumer` (stable across restarts): its own pending entries
// first (after a crash), then new ones; entries another consumer has held longer than
// `claim_after` are taken over with XAUTOCLAIM. An entry is acknowledged AND deleted (XACK +
// XDEL) in the same script that records its result, so the stream holds only unfinished jobs.
//
// barista:batch:ID (hash), the batch record. The id is reserved atomically at submission (a
// script: create the hash only if absent, the HSETNX pattern); when taken, -2, -3, … is appended
// as in the spool.
//     pool            the submitting pool
//     state           running | done | cancelled
//     cancel_all      "1" | "0": the submitting daemon's on_error policy
//     started         ISO 8601 UTC (2026-11-27T18:32:04.123Z), at submission
//     total           number of jobs; absent while the submission is under way
//     ok failed timeout cancelled invalid   results by status
//     done            results recorded (their sum)
//     first_error_id, first_error           the first failure's job id and error
//     finished        ISO 8601 UTC, set exactly once: when `done` reaches `total` (by the last
//                     result, or by the end of the submission when the results came first)
// barista:results:ID (hash)        job id -> "1" for each job with a result: the first result
//                                  of a job wins, later ones (re-runs after a crash or a
//                                  take-over) are dropped.
// barista:results:ID:lines (list)  the results.jsonl lines (docs/reference.md#results) in
//                                  completion order.
// When a batch ends, its three keys get EXPIRE `results_ttl`.
//
// Cancellation: the state becomes `cancelled` (only from `running`) and the batch id is
// PUBLISHed on the channel barista:cancel, by cancel() or by the record script at the first
// failure of a cancel_all batch. Daemons subscribe (Subscriber) and also see the state when they
// read the record. A cancelled batch still ends when every job has a result (the remaining jobs
// are recorded as `cancelled` by whoever reads them).
//
// Per-key limits, throttles and pauses across the daemons: daemon/redis/key_leases.hpp.
//
// The keys of one batch are not under a common hash tag: this assumes one Redis server (or a
// primary with replicas), not Redis Cluster.

#include "daemon/config/config.hpp"
#include "daemon/redis/model.hpp"
#include "daemon/redis/recorder.hpp"
#include "daemon/redis/script.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace barista::redis {

/// A pool's stream, its batches and their results, seen by one daemon on one connection.
///
/// Not thread-safe: each thread that needs it owns its own. In a daemon, the pool's feeder thread
/// owns one (ensure_group, read_own_pending, read_new, claim_idle, discard, batch_cancelled,
/// pending_count); a control socket handler makes its own for submit, results, status and cancel;
/// each worker records through a Recorder of its own rather than through this class.
class StreamStore {
 public:
  /// Connects (see Client). Payloads larger than `max_job_bytes` come back `malformed`.
  /// Throws RedisError.
  StreamStore(const config::RedisConfig& cfg, std::uint64_t max_job_bytes,
              std::chrono::milliseconds timeout);

  // --- consuming --------------------------------------------------------------------------

  /// Creates the consumer group (and the stream) unless it exists.
  void ensure_group();

  /// Up to `count` entries delivered to this consumer earlier and never acknowledged (this
  /// daemon died while running them), oldest first, with their delivery counts (this delivery
  /// included). Entries deleted from the stream meanwhile are acknowledged away, not returned.
  /// Each call continues after the last entry the previous one returned; call it at start-up
  /// until it returns nothing, before the first read_new (afterwards this consumer's pending
  /// entries include the ones its workers are running).
  std::vector<Entry> read_own_pending(std::size_t count);

  /// Up to `count` entries never delivered to any consumer; waits up to `block` for the first
  /// one (0: does not wait). Their delivery count is 1.
  std::vector<Entry> read_new(std::size_t count, std::chrono::milliseconds block);

  /// Takes over up to `count` entries that other consumers have held for longer than
  /// claim_after (XAUTOCLAIM; the scan resumes where the previous call stopped), with their
  /// delivery counts (this delivery included).
  std::vector<Entry> claim_idle(std::size_t count);

  /// See Recorder::record.
  RecordResult record(const Entry& entry, std::string_view status, std::string_view error,
                      std::string_view result_line, bool cancel_all, std::string_view now_iso,
                      std::chrono::seconds ttl) {
    return recorder_.record(entry, status, error, result_line, cancel_all, now_iso, ttl);
  }
  /// See Recorder::record_many.
  std::vector<RecordResult> record_many(const std::vector<Recorder::Result>& results,
                                        bool cancel_all, std::string_view now_iso,
                                        std::chrono::seconds ttl) {
    return recorder_.record_many(results, cancel_all, now_iso, ttl);
  }
  /// See Recorder::discard.
  void discard(const Entry& entry) { recorder_.discard(entry); }
  /// See Recorder::batch_cancelled.
  bool batch_cancelled(std::string_view batch) { return recorder_.batch_cancelled(batch); }
  /// See Recorder::cancel.
  CancelResult cancel(std::string_view batch) { return recorder_.cancel(batch); }

  /// Entries delivered and not yet acknowledged, over all consumers (XPENDING summary).
  std::uint64_t pending_count();

  // --- submitting -------------------------------------------------------------------------

  /// Reserves a batch id: `wanted_id`, or the first free of wanted_id-2, -3, …; writes the
  /// record (pool, state running, cancel_all, started, counters 0) and returns the id.
  std::string begin_batch(std::string_view wanted_id, std::string_view pool, bool cancel_all,
                          std::string_view now_iso);

  /// Adds one stream entry per (job id, payload), in order, in one round trip; `keys[i]`, when
  /// there and not empty, is job i's key.
  void add_jobs(std::string_view batch,
                const std::vector<std::pair<std::string, std::string>>& id_payloads,
                const std::vector<std::string>& keys = {});

  /// Sets the batch's total; ends the batch at once when every job already has a result (they
  /// all ran before the submission ended, or there are none). Returns true when it ended it.
  /// Throws RedisError when the batch record does not exist.
  bool end_batch(std::string_view batch, std::uint64_t total, std::string_view now_iso,
                 std::chrono::seconds ttl);

  // --- reading ----------------------------------------------------------------------------

  /// The batch record; nullopt for an unknown (or expired) batch.
  std::optional<BatchRecord> batch(std::string_view id);

  /// The batch's results.jsonl lines from the `from`th on, in completion order (read in pages).
  std::vector<std::string> result_lines(std::string_view id, std::size_t from = 0);

  [[nodiscard]] Client& client() noexcept { return recorder_.client(); }
  [[nodiscard]] const std::string& consumer() const noexcept { return consumer_; }

 private:
  // Runs `read`, creating the group again and retrying once when the server says NOGROUP (the
  // stream or the group was deleted while the daemon ran).
  template <typename Fn>
  auto with_group(Fn&& read);
  std::vector<Entry> entries_from(const Reply& list);
  // Fills in each entry's delivery count; drops entries no longer pending for this consumer.
  void set_deliveries(std::vector<Entry>& entries);

  Recorder recorder_;
  std::string consumer_;
  std::chrono::milliseconds claim_after_;
  std::uint64_t max_job_bytes_;
  std::string own_cursor_ = "0";
  std::string claim_cursor_ = "0-0";
  Script begin_script_;
  Script end_script_;
};

}  // namespace barista::redis
