#pragma once

// The values kept in Redis for a shared pool, and the names of their keys. The data model as a
// whole is described at the top of daemon/redis/stream_store.hpp.

#include "daemon/redis/redis_client.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace barista::redis {

/// The channel on which a cancelled batch's id is published.
inline constexpr std::string_view kCancelChannel = "barista:cancel";

/// barista:batch:ID — the batch record (a hash).
std::string batch_key(std::string_view batch);
/// barista:results:ID — job id -> 1 for every job with a result (a hash).
std::string results_key(std::string_view batch);
/// barista:results:ID:lines — the results.jsonl lines in completion order (a list).
std::string lines_key(std::string_view batch);

/// True for the statuses a result may have: ok, failed, timeout, cancelled, invalid.
bool is_status(std::string_view status);
/// failed, timeout and invalid are failures (docs/reference.md#statuses); ok and cancelled are
/// not.
bool is_failure_status(std::string_view status);

/// One stream entry handed to this consumer: a job, or something to record as `invalid`.
struct Entry {
  std::string stream_id;         ///< the entry's id in the stream, e.g. "1700000000000-0"
  std::string batch;             ///< empty when the entry has no `batch` field (then discard() it)
  std::string id;                ///< the job id; the stream id when the entry has no `id` field
  std::string payload;           ///< empty when `malformed` is set
  std::string key;               ///< the job's own key ("" for none): the `key` field
  std::uint64_t deliveries = 1;  ///< times delivered to a consumer, this time included
  /// Why the entry is not a runnable job ("" when it is): a missing field, or a payload larger
  /// than max_job_bytes. The caller records it as an `invalid` result with this as the error.
  std::string malformed;
};

/// What record() did.
struct RecordResult {
  bool first = false;      ///< this was the job's first result (it was stored)
  bool finished = false;   ///< this result ended the batch (it is done or cancelled for good)
  bool cancelled = false;  ///< the batch is cancelled (now, or was already)
  /// The batch record does not exist (expired after the batch finished, or never made): the
  /// entry was only acknowledged and deleted.
  bool orphan = false;
};

/// What cancel() found.
enum class CancelResult {
  kUnknown,     ///< no such batch
  kCancelled,   ///< it was running and is now cancelled (the id was published)
  kNotRunning,  ///< it had already ended or been cancelled; nothing changed
};

/// Counts of recorded results by status, and their sum as kept in `done`.
struct RecordCounts {
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::uint64_t timeout = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t invalid = 0;
  std::uint64_t done = 0;
};

/// A batch record (barista:batch:ID) as read back.
struct BatchRecord {
  std::string id;
  std::string pool;
  std::string state;                   ///< running, done or cancelled
  std::optional<std::uint64_t> total;  ///< absent while the submission is under way
  RecordCounts counts;
  std::optional<std::string> first_error_id;  ///< set with first_error, at the first failure
  std::string first_error;
  std::string started;   ///< ISO 8601 UTC
  std::string finished;  ///< ISO 8601 UTC; empty until the batch ends
  bool cancel_all = false;

  [[nodiscard]] bool ended() const noexcept { return !finished.empty(); }
};

/// Parses the reply of HGETALL barista:batch:ID; nullopt when the hash does not exist.
/// Throws RedisError when a counter is not a number.
std::optional<BatchRecord> parse_batch_record(std::string_view id, const Reply& hgetall);

/// The batch's summary.json, in the spool's shape and key order (docs/reference.md#summary),
/// ending in '\n':
/// {"batch","pool","state","jobs","ok","failed","timeout","cancelled","invalid",
///  "first_error":{"id","error"}|null,"started","finished","seconds"}. `jobs` counts the
/// recorded results, as the spool's does. For a batch still running, state is "running" and
/// finished and seconds are null.
std::string summary_json(const BatchRecord& record);

/// Parses the daemon's ISO 8601 UTC stamps (2026-11-27T18:32:04.123Z; the fraction optional).
std::optional<std::chrono::system_clock::time_point> parse_iso8601_utc(std::string_view text);

}  // namespace barista::redis
