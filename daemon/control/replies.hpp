#pragma once

// The daemon's answers that carry more than `ok` or an error, defined once for both ends of the
// control socket (protocol.hpp): the daemon builds one of these values and writes it with
// to_line() (replies.cpp); the CLI reads the same line back into the same value with the
// read_*() functions (replies_read.hpp). A field added here reaches both, and the round trip
// is under unit test (tests/unit/control/replies_test.cpp).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace barista::control {

/// A key that holds jobs up, in `status POOL`.
struct KeyInfo {
  std::string key;  ///< "" for the pool's jobs without a key (a throttle of the whole pool)
  std::uint64_t in_flight = 0;
  std::uint64_t waiting = 0;  ///< jobs set aside until it may start
  bool paused = false;
  bool at_limit = false;           ///< per_key.max_in_flight attempts run
  std::uint64_t throttled_ms = 0;  ///< how long it stays throttled; 0: not throttled
  std::string throttled_until;     ///< when, ISO 8601 UTC; empty: not throttled

  bool operator==(const KeyInfo&) const = default;
};

/// A pool in `status`.
struct PoolRow {
  std::string name;
  std::string plugin;
  std::uint64_t workers = 0;
  std::uint64_t busy = 0;
  std::uint64_t queued = 0;
  std::string on_error;         ///< "continue" or "cancel_all"
  std::uint64_t abandoned = 0;  ///< workers replaced because a processor ignored its deadline
  std::string redis;            ///< a pool shared through Redis: "connected" or "unavailable"
  std::optional<std::uint64_t> pending;  ///< its stream's jobs handed out and not yet finished
  std::string storage_error;             ///< why its storage fails now; empty while it works
  bool paused = false;                   ///< `barista pause POOL`
  std::vector<std::string> paused_keys;  ///< `barista pause POOL --key K`
  std::uint64_t throttles = 0;           ///< throttled attempts since the pool started
  std::uint64_t keys_blocked = 0;        ///< keys throttled, paused or at their limit now
  std::vector<KeyInfo> keys;  ///< `status POOL`: those keys, most blocked first (at most 20)
  std::uint64_t worker_restarts = 0;  ///< worker processes started again (isolation: process)
  std::string workers_failing;        ///< why worker processes are no longer started; or empty

  bool operator==(const PoolRow&) const = default;
};

/// A batch's progress: a row of `status`, and each line of `wait` before the summary.
struct BatchProgress {
  std::string batch;  ///< empty in a `wait` line, which is about the batch asked for
  std::string pool;   ///< likewise
  std::uint64_t done = 0;
  std::uint64_t total = 0;  ///< the jobs known so far; final once `read_all`
  std::uint64_t failed = 0;
  bool read_all = false;

  bool operator==(const BatchProgress&) const = default;
};

/// {"ok":true,"pools":[...],"batches":[...],"generation":N}
struct StatusReply {
  std::vector<PoolRow> pools;
  std::vector<BatchProgress> batches;
  std::uint64_t generation = 0;

  bool operator==(const StatusReply&) const = default;
};

/// {"ok":true,"batch":ID,"pool":P[,"warnings":[...]]}: a submission stored.
struct SubmitReply {
  std::string batch;
  std::string pool;
  std::vector<std::string> warnings;  ///< what was noticed but stored anyway

  bool operator==(const SubmitReply&) const = default;
};

/// {"ok":B,"generation":N,"code":C,"changes":[...],"errors":[...]}: a reload's outcome.
struct ReloadReply {
  bool ok = false;
  std::uint64_t generation = 0;  ///< the config now running; 0: the reload did not run
  int code = 0;                  ///< the CLI's exit code (exit_codes.hpp)
  std::vector<std::string> changes;
  std::vector<std::string> errors;  ///< FILE:LINE:COL: message, as check-config prints them

  bool operator==(const ReloadReply&) const = default;
};

/// Each as one JSON line, newline included.
std::string to_line(const StatusReply& reply);
std::string to_line(const SubmitReply& reply);
std::string to_line(const ReloadReply& reply);
/// {"progress":{"done":D,"total":T,"failed":F,"read_all":B}}\n (batch and pool left out).
std::string progress_line(const BatchProgress& progress);
/// {"ok":true,"summary":SUMMARY}\n, `summary` being a batch's summary JSON without its newline.
/// A reader cuts SUMMARY out between the prefix and the last `}`, byte for byte.
std::string summary_line(std::string_view summary);
inline constexpr std::string_view kSummaryLinePrefix = R"({"ok":true,"summary":)";
/// {"ok":true}\n
std::string ok_line();

}  // namespace barista::control
