#pragma once

// Several real baristad processes sharing one pool through a private redis-server
// (docs/several-machines.md). The test is the submitter: it writes batches into the stream with the
// daemon's own store layer (redis::StreamStore), as `barista submit` would, and reads the batch
// record and the result lines back from Redis. Each daemon has its own spool, control socket and
// consumer name (d1, d2, ...), and serves its metrics on a port of its own.

#include "daemon/redis/stream_store.hpp"
#include "tests/integration/core/core_support.hpp"  // Problems
#include "tests/integration/harness/daemon_harness.hpp"
#include "tests/unit/redis/redis_server.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace barista::itest::cluster {

inline constexpr const char* kPool = "shared";
inline constexpr const char* kStream = "barista:shared";
inline constexpr const char* kGroup = "barista";

/// False (after a Catch2 WARN saying why the test is skipped) when redis-server is missing.
/// Also ignores SIGPIPE: hiredis writes with plain write(), and the tests kill the server.
bool have_redis_server();

/// One daemon's `shared` pool.
struct PoolOptions {
  std::string plugin = "echo";
  int workers = 4;
  int queue = 256;
  std::string on_error = "continue";
  int max_crashes = 2;
  std::string claim_after = "1s";
  std::string plugin_config = "{delay: 1ms}";  ///< the `config:` flow map; "" for none
  std::string extra;  ///< more lines of the pool's section, each "    key: value\n"
};

/// A pool running on three daemons that all have the same options.
inline std::vector<PoolOptions> three(const PoolOptions& options) {
  return {options, options, options};
}

/// The `pools:` body of daemon `consumer` (pool `shared` on `url`).
std::string pool_yaml(const PoolOptions& options, const std::string& url,
                      const std::string& consumer);

/// The redis-server, the daemons (not started) and the test's own connection.
class Cluster {
 public:
  /// One daemon per entry of `pools`, consumer names d1, d2, ...; `appendfsync` is the
  /// server's (see testing::RedisServer).
  explicit Cluster(const std::vector<PoolOptions>& pools, std::string appendfsync = "everysec");

  testing::RedisServer& server() { return server_; }
  /// Daemon `i`, 0-based: its consumer name is consumer(i).
  Daemon& daemon(std::size_t i) { return *daemons_.at(i); }
  [[nodiscard]] std::size_t size() const { return daemons_.size(); }
  [[nodiscard]] static std::string consumer(std::size_t i) { return "d" + std::to_string(i + 1); }
  void start_all();

  /// The test's store (consumer "itest", which never reads the group), made again after the
  /// connection was lost (the server was killed).
  redis::StreamStore& store();

  /// Submits a batch as `barista submit` does: the record, jobs "1".."n" with payload(i) added
  /// 1,000 per round trip, then the total. Returns the batch id.
  std::string submit(const std::string& wanted_id, int n,
                     const std::function<std::string(int)>& payload, bool cancel_all = false);

  /// The batch record; retries through a lost connection for up to 10 s.
  std::optional<redis::BatchRecord> record(const std::string& id);
  /// Number of result lines recorded so far.
  std::size_t result_count(const std::string& id);
  /// Every result line, parsed (throws HarnessError for a line not as docs/reference.md#results
  /// describes).
  std::vector<JobResult> results(const std::string& id, std::size_t from = 0);

  /// Waits until the batch has ended (its `finished` is set); fails the test with the daemons'
  /// logs after `timeout`. Daemons may be down meanwhile: that is the point of some tests.
  redis::BatchRecord wait_end(const std::string& id, std::chrono::milliseconds timeout);
  /// Waits until at least `n` results are recorded; fails the test after `timeout`.
  void wait_results(const std::string& id, std::size_t n, std::chrono::milliseconds timeout);

  /// The job ids of the entries pending for `consumer` (delivered, never acknowledged), keyed
  /// by their stream ids.
  std::map<std::string, std::string> pending_jobs(const std::string& consumer);
  /// Entries delivered and not acknowledged, over all consumers (XPENDING summary).
  long long pending_total();
  /// Entries in the stream (never delivered or pending: finished ones are deleted).
  long long stream_length();

  /// Daemon `i`'s barista_jobs_total{pool="shared",status=STATUS} from its /metrics: the
  /// results it recorded; -1 when absent or not served.
  double jobs_metric(std::size_t i, const std::string& status);

  /// The end of every daemon's log, for failure messages.
  [[nodiscard]] std::string logs() const;

 private:
  testing::RedisServer server_;
  std::vector<std::unique_ptr<Daemon>> daemons_;
  std::map<std::size_t, std::string> metrics_urls_;
  std::unique_ptr<redis::StreamStore> store_;
};

/// Checks that `results` hold exactly one result for each of the jobs "1".."n" and nothing
/// else (one CHECK naming the first problems). Returns them indexed by job number - 1.
std::vector<JobResult> one_result_per_job(const std::vector<JobResult>& results, int n);

/// How many times `text` occurs in `log`.
std::size_t occurrences(const std::string& log, const std::string& text);

/// The payload of job `i` in the cluster tests' batches: "job-I" (echo returns it as the output).
inline std::string job_payload(int i) { return "job-" + std::to_string(i); }

/// Milliseconds since `start`.
double ms_since(Clock::time_point start);

}  // namespace barista::itest::cluster
