#pragma once

#include "daemon/config/config.hpp"
#include "tests/unit/redis/redis_server.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <string>

namespace barista::redis_test {

using namespace std::chrono_literals;

/// Tests skip (with a warning) only when redis-server is not installed.
inline bool have_redis_server() {
  if (!testing::RedisServer::available()) {
    WARN("skipped: " << testing::RedisServer::kBinary << " is not installed");
    return false;
  }
  // hiredis writes with plain write(): a server killed by a test must not take the test process
  // down with SIGPIPE (baristad ignores SIGPIPE likewise).
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}

/// A pool's redis: section pointing at `server`, as the config loader would fill it in.
inline config::RedisConfig redis_config(const testing::RedisServer& server,
                                        std::string consumer = "daemon-a") {
  config::RedisConfig cfg;
  cfg.url = server.url();
  cfg.host = server.host();
  cfg.port = server.port();
  cfg.stream = "barista:test";
  cfg.group = "barista";
  cfg.consumer = std::move(consumer);
  cfg.claim_after = 100ms;
  return cfg;
}

inline constexpr std::chrono::milliseconds kTimeout = 2s;

}  // namespace barista::redis_test
