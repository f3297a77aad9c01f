#pragma once

#include <barista/plugin_config.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace barista::config {

using std::chrono::milliseconds;

/// Where something stands in a config file; line and column are 1-based (0: unknown).
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
};

/// The pool's error policy for a batch.
enum class OnError { kContinue, kCancelAll };

/// A cap on attempt starts: `count` per `per` (1s, 1m or 1h).
struct Rate {
  std::uint64_t count = 0;
  milliseconds per{1000};
  bool operator==(const Rate&) const = default;
};

/// Where a job's key comes from when its JSONL line gives none.
enum class KeySource { kNone, kUrlHost };

/// Where a pool's processors run: in the daemon's worker threads, or in worker processes.
enum class Isolation { kThread, kProcess };

/// A pool's `per_key:` section: limits that hold for every key separately.
struct PerKey {
  int max_in_flight = 0;  ///< attempts of one key running at once; 0: no limit
  std::optional<Rate> rate;
  bool operator==(const PerKey&) const = default;
};

/// A pool's `redis:` section (pools shared by several daemons).
struct RedisConfig {
  std::string url;
  std::string stream;  // default barista:POOL
  std::string group = "barista";
  std::string consumer;  // default: the host name
  milliseconds claim_after{30'000};
  milliseconds results_ttl{7LL * 24 * 3600 * 1000};
  // `url` taken apart by the loader (redis://[:password@]host:port[/db]):
  std::string host;      ///< as written; an IPv6 address keeps its brackets
  int port = 6379;       ///< 1-65535
  int db = 0;            ///< 0 when the url has no /db
  std::string password;  ///< empty when the url has none
  bool operator==(const RedisConfig&) const = default;
};

/// One entry of `pools:`, typed and validated. Defaults: docs/reference.md#pool-keys.
struct PoolConfig {
  std::string name;
  /// A name looked up as NAME.so in plugin_path, or an absolute path (a path written relative,
  /// with a '/', is resolved against the config file's folder).
  std::string plugin;
  int workers = 1;
  std::size_t queue = 64;
  OnError on_error = OnError::kContinue;
  int retries = 0;
  milliseconds backoff{100};
  milliseconds max_backoff{30'000};
  std::optional<milliseconds> timeout;  ///< per-attempt deadline; none when absent
  std::optional<Rate> rate;
  std::uint64_t max_job_bytes = 1ULL << 20;
  int max_crashes = 2;
  KeySource key = KeySource::kNone;
  PerKey per_key;
  milliseconds max_throttled{3'600'000};  ///< a job's total throttled time before it fails
  /// `process` for `isolation: process`, and always for `plugin: exec`.
  Isolation isolation = Isolation::kThread;
  std::optional<std::uint64_t> memory_max;  ///< a worker process's address space, bytes
  PluginConfig plugin_config;               ///< the `config:` map
  std::optional<RedisConfig> redis;

  Location location;         ///< of the pool's name
  Location plugin_location;  ///< of the `plugin:` value (plugin errors are reported here)
};

/// The whole file, typed and validated. Defaults: docs/reference.md#top-level-keys.
struct DaemonConfig {
  std::filesystem::path file;  ///< the config file it was read from (absolute)
  std::filesystem::path spool = "/var/lib/barista";
  std::filesystem::path control_socket = "/run/barista/barista.sock";
  std::vector<std::filesystem::path> plugin_path;  ///< default: the installed plugin folder
  std::string log_level = "info";
  std::optional<std::string> metrics;  ///< host:port
  milliseconds shutdown_timeout{30'000};
  std::vector<PoolConfig> pools;  ///< in file order

  [[nodiscard]] const PoolConfig* find_pool(std::string_view name) const {
    for (const auto& p : pools) {
      if (p.name == name) {
        return &p;
      }
    }
    return nullptr;
  }
};

}  // namespace barista::config
