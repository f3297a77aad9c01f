#include "daemon/runtime/pauses.hpp"

#include "daemon/common/fs.hpp"
#include "daemon/common/json.hpp"
#include "daemon/redis/key_leases.hpp"
#include "daemon/runtime/backends.hpp"

#include <simdjson.h>

#include <filesystem>

#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

std::filesystem::path pauses_file(const pool::Pool& pool) {
  return folders_of(pool).root() / "paused.json";
}

}  // namespace

void restore_pauses(pool::Pool& pool) {
  if (pool.settings()->config.redis) {
    return;  // kept in Redis: read when the pool connects
  }
  const auto file = pauses_file(pool);
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    return;
  }
  try {
    const auto text = common::read_file(file);
    simdjson::dom::parser parser;
    simdjson::dom::object obj;
    if (parser.parse(text).get_object().get(obj) != simdjson::SUCCESS) {
      throw std::runtime_error("not a JSON object");
    }
    bool paused = false;
    if (obj["pool"].get_bool().get(paused) != simdjson::SUCCESS) {
      paused = false;
    }
    std::set<std::string> keys;
    simdjson::dom::array list;
    if (obj["keys"].get_array().get(list) == simdjson::SUCCESS) {
      for (auto item : list) {
        std::string_view key;
        if (item.get_string().get(key) == simdjson::SUCCESS) {
          keys.emplace(key);
        }
      }
    }
    pool.set_paused(paused, keys);
    if (paused || !keys.empty()) {
      spdlog::warn("pool '{}': paused{} (barista resume lifts it)", pool.name(),
                   paused ? "" : fmt::format(" for {} keys", keys.size()));
    }
  } catch (const std::exception& e) {
    spdlog::error("pool '{}': cannot read its pauses from {}: {}: ignored", pool.name(),
                  file.string(), e.what());
  }
}

namespace {

void save_pauses(pool::Pool& pool, bool paused, const std::set<std::string>& keys) {
  std::string text = paused ? R"({"pool":true,"keys":[)" : R"({"pool":false,"keys":[)";
  bool first = true;
  for (const auto& key : keys) {
    text += first ? "" : ",";
    common::append_json_string(text, key);
    first = false;
  }
  text += "]}\n";
  common::write_file_durably(pauses_file(pool), text);
  pool.set_paused(paused, keys);
}

constexpr auto kRedisTimeout = std::chrono::milliseconds(2000);

}  // namespace

PauseChange change_pause(pool::Pool& pool, bool pause, const std::string& key) {
  const auto settings = pool.settings();
  if (const auto& redis = settings->config.redis) {
    // One change at a time in Redis (a set), so that two daemons pausing two keys at once
    // keep both; then this daemon applies what Redis holds, as the others do when told.
    redis::Client client(*redis, kRedisTimeout);
    const bool changed = redis::change_pause(client, redis->stream, pause, key);
    if (!pause && !key.empty() && !changed) {
      return PauseChange::kNotPaused;
    }
    const auto now = redis::read_pauses(client, redis->stream);
    pool.set_paused(now.pool, now.keys);
    return PauseChange::kDone;
  }
  bool paused = pool.paused();
  auto keys = pool.paused_keys();
  if (key.empty()) {
    paused = pause;
  } else if (pause) {
    keys.insert(key);
  } else if (keys.erase(key) == 0) {
    return PauseChange::kNotPaused;
  }
  save_pauses(pool, paused, keys);
  return PauseChange::kDone;
}

}  // namespace barista::runtime
