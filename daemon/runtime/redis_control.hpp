#pragma once

// What the control handlers of pools shared through Redis (redis_handlers.cpp,
// redis_submit.cpp) have in common: a pool's Redis settings, and how a Redis failure is told.

#include "daemon/common/fs.hpp"
#include "daemon/common/json.hpp"
#include "daemon/control/control_server.hpp"
#include "daemon/control/exit_codes.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/redis/stream_store.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace barista::runtime::redis_control {

/// Exit codes of error replies, as for spool batches (docs/reference.md#exit-codes).
inline constexpr int kUnknown = control::kExitFailed;
inline constexpr int kRefused = control::kExitRefused;
/// Every connection a control request makes: connect, and each command after it.
inline constexpr auto kRedisTimeout = std::chrono::milliseconds(2000);

using common::json_quoted;

inline std::string now_iso() { return common::iso8601_utc(std::chrono::system_clock::now()); }

/// "pool 'scrape': redis at 127.0.0.1:6390 unavailable: cannot connect: Connection refused", or
/// "... refused a command: WRONGTYPE ..." for an error reply (the server is there).
inline std::string redis_problem(std::string_view pool, const config::RedisConfig& cfg,
                                 const redis::RedisError& e) {
  const auto endpoint = fmt::format("{}:{}", cfg.host, cfg.port);
  std::string_view what = e.what();
  const auto prefix = fmt::format("redis {}: ", endpoint);
  if (what.starts_with(prefix)) {
    what.remove_prefix(prefix.size());
  }
  const bool refused = dynamic_cast<const redis::ReplyError*>(&e) != nullptr;
  return fmt::format("pool '{}': redis at {} {}: {}", pool, endpoint,
                     refused ? "refused a command" : "unavailable", what);
}

/// A pool with a `redis:` section, and the settings it runs with.
struct RedisPool {
  std::string name;
  std::shared_ptr<const pool::PoolSettings> settings;

  [[nodiscard]] const config::RedisConfig& redis() const { return *settings->config.redis; }
  [[nodiscard]] bool cancel_all() const {
    return settings->config.on_error == config::OnError::kCancelAll;
  }
  [[nodiscard]] std::chrono::seconds ttl() const {
    return std::chrono::duration_cast<std::chrono::seconds>(redis().results_ttl);
  }
  /// A connection of the request's own. Throws RedisError.
  [[nodiscard]] std::unique_ptr<redis::StreamStore> connect(
      std::chrono::milliseconds timeout = kRedisTimeout) const {
    return std::make_unique<redis::StreamStore>(redis(), settings->config.max_job_bytes, timeout);
  }
};

/// Stores a batch submitted to a Redis pool: reads `tmp` (the body as received) with the
/// spool's parsing rules, adds its jobs to the pool's stream, records its invalid lines, and
/// answers with the batch id or an error. Removes `tmp` (redis_submit.cpp).
void submit_to_redis(const RedisPool& pool, const std::filesystem::path& tmp,
                     const std::string& name, const std::function<bool()>& stopping,
                     control::Connection& conn);

}  // namespace barista::runtime::redis_control
