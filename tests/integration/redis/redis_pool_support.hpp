#pragma once

// A real baristad with a pool shared through Redis (docs/several-machines.md) next to a spool pool,
// on a private redis-server (tests/unit/redis/redis_server.hpp), and a connection of the test's own
// to look at what the daemon stored there.

#include "daemon/redis/model.hpp"
#include "daemon/redis/redis_client.hpp"
#include "tests/integration/cli/cli_support.hpp"
#include "tests/unit/redis/redis_server.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

namespace barista::itest::redis_pools {

using cli::lines_of;
using cli::pool;
using cli::run_cli;
using cli::with_socket;

/// Tests skip (with a warning) only when redis-server is not installed.
inline bool have_redis_server() {
  if (!testing::RedisServer::available()) {
    WARN("skipped: " << testing::RedisServer::kBinary << " is not installed");
    return false;
  }
  // hiredis writes with plain write(): a server killed by a test must not take the test process
  // down with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}

/// The redis: section of a pool on `server`.
inline std::string redis_section(const testing::RedisServer& server) {
  return "    redis:\n      url: " + server.url() + "\n      consumer: itest\n";
}

/// A daemon with the spool pool `local` (echo) and the Redis pool `shared` running `plugin`
/// (`more`: further lines of its section, indented by four spaces), on a redis-server of its own
/// with every write fsynced (so that a restart finds all of it).
struct SharedPool {
  testing::RedisServer server{"always"};
  Daemon d;
  TempDir tmp;

  explicit SharedPool(const std::string& plugin, int workers = 2, const std::string& more = "")
      : d(pool("local", "echo", 1) +
          pool("shared", plugin, workers, more + redis_section(server))) {}

  /// The test's own connection (made again when the server was restarted).
  redis::Client& redis() {
    if (!client_ || !client_->connected()) {
      config::RedisConfig cfg;
      cfg.host = server.host();
      cfg.port = server.port();
      client_ = std::make_unique<redis::Client>(cfg, std::chrono::seconds(2));
    }
    return *client_;
  }
  /// HGET barista:batch:ID FIELD ("" when absent).
  std::string record(const std::string& id, const std::string& field) {
    return redis().command({"HGET", redis::batch_key(id), field}).str();
  }
  [[nodiscard]] bool exists(const std::string& key) {
    return redis().command({"EXISTS", key}).integer() == 1;
  }
  /// The stream's entries as "batch|id|payload", oldest first.
  std::vector<std::string> stream_entries(const std::string& stream = "barista:shared") {
    std::vector<std::string> out;
    const auto entries = redis().command({"XRANGE", stream, "-", "+"});
    for (const auto& e : entries.elements()) {
      std::string batch, id, payload;
      const auto& fields = e.at(1);
      for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
        const auto& name = fields.at(i).str();
        (name == "batch" ? batch : name == "id" ? id : payload) = fields.at(i + 1).str();
      }
      out.push_back(batch + "|" + id + "|" + payload);
    }
    return out;
  }

  /// Writes `content` to a file named `name` in the test's folder and submits it.
  cli::CliRun submit(const std::string& name, const std::string& content,
                     std::vector<std::string> more = {}) {
    const auto file = tmp.path() / name;
    write_file(file, content);
    std::vector<std::string> args{"submit", "shared", file.string()};
    args.insert(args.end(), more.begin(), more.end());
    return run_cli(with_socket(d, args));
  }
  cli::CliRun barista(const std::vector<std::string>& args) {
    return run_cli(with_socket(d, args));
  }
  /// The batch's result lines as `barista results ID` prints them, parsed.
  std::vector<JobResult> results(const std::string& id) {
    std::vector<JobResult> out;
    for (const auto& line : lines_of(barista({"results", id}).out)) {
      out.push_back(parse_result_line(line));
    }
    return out;
  }

  /// The received bodies baristad left in the Redis pool's inbox (there should be none).
  [[nodiscard]] std::vector<std::string> leftover_bodies() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(d.inbox("shared"), ec)) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }

 private:
  std::unique_ptr<redis::Client> client_;
};

}  // namespace barista::itest::redis_pools
