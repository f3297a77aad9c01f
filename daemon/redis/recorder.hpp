#pragma once

#include "daemon/config/config.hpp"
#include "daemon/redis/model.hpp"
#include "daemon/redis/redis_client.hpp"
#include "daemon/redis/script.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace barista::redis {

/// Records results of a shared pool's jobs, on a connection of its own. Each worker thread owns
/// one (a Recorder is not thread-safe); StreamStore owns one too and sends all of its commands
/// through that Recorder's Client. See stream_store.hpp for the keys it writes.
class Recorder {
 public:
  /// Connects (see Client). Throws RedisError.
  Recorder(const config::RedisConfig& cfg, std::chrono::milliseconds timeout);

  /// Records a job's result, atomically (one Lua script):
  /// - the first result of the job (by job id) is stored: its line appended to the batch's
  ///   lines, its status counted, `done` counted, `first_error` set at the first failure;
  ///   a later result of the same job is dropped (`first` false);
  /// - a failure cancels a running batch when `cancel_all` is set here OR in the batch record
  ///   (the submitting daemon's policy): either daemon's cancel_all policy is honoured, since
  ///   the daemons sharing a pool are meant to share its config and a cancel cannot be undone;
  ///   the batch id is then published on barista:cancel;
  /// - the entry is acknowledged and deleted from the stream (XACK + XDEL), always;
  /// - when `total` is known and every job has a result, the batch ends: `finished` = now_iso,
  ///   state `done` (unless cancelled), and its three keys expire after `ttl`.
  /// `status` is ok|failed|timeout|cancelled|invalid (std::invalid_argument otherwise);
  /// `result_line` is the results.jsonl line (no newline). An entry with an empty stream_id (a
  /// result that no stream entry stands for) is recorded without XACK/XDEL. Throws RedisError.
  RecordResult record(const Entry& entry, std::string_view status, std::string_view error,
                      std::string_view result_line, bool cancel_all, std::string_view now_iso,
                      std::chrono::seconds ttl);

  /// One result for record_many().
  struct Result {
    const Entry* entry;
    std::string_view status;
    std::string_view error;
    std::string_view result_line;
  };
  /// record() for several results in one round trip (the script calls pipelined), in order.
  std::vector<RecordResult> record_many(const std::vector<Result>& results, bool cancel_all,
                                        std::string_view now_iso, std::chrono::seconds ttl);

  /// Acknowledges and deletes an entry that will get no result (it has no `batch` field).
  void discard(const Entry& entry);

  /// True when the batch record says `cancelled` (one HGET; the caller caches it).
  bool batch_cancelled(std::string_view batch);

  /// Cancels a running batch: state `cancelled` and its id published on barista:cancel, in one
  /// script, so two daemons cancelling at once publish once.
  CancelResult cancel(std::string_view batch);

  [[nodiscard]] Client& client() noexcept { return client_; }
  [[nodiscard]] const std::string& stream() const noexcept { return stream_; }
  [[nodiscard]] const std::string& group() const noexcept { return group_; }

 private:
  Client client_;
  std::string stream_;
  std::string group_;
  Script record_script_;
  Script cancel_script_;
};

/// The Lua text that ends a batch whose results are all in (shared by the record and the
/// end-of-submission scripts). Expects KEYS[1..3] = batch, results, lines keys and the locals
/// `now` and `ttl`; defines finish_if_complete() returning 1 when it ended the batch.
extern const char* const kFinishLua;

}  // namespace barista::redis
