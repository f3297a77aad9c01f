#include "daemon/config/pool_section.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <climits>

#include <fmt/format.h>

namespace barista::config::detail {
namespace {

using Kind = YamlNode::Kind;
using std::chrono::milliseconds;

constexpr std::array<std::string_view, 18> kPoolKeys = {
    "plugin",      "workers", "queue",   "on_error",      "retries",       "backoff",
    "max_backoff", "timeout", "rate",    "config",        "max_job_bytes", "max_crashes",
    "redis",       "key",     "per_key", "max_throttled", "isolation",     "memory_max"};
constexpr std::array<std::string_view, 2> kIsolationValues = {"thread", "process"};
// Below this no worker process starts (the dynamic loader and libc alone map more).
constexpr std::uint64_t kMinMemoryMax = 16ULL << 20;
constexpr std::array<std::string_view, 2> kPerKeyKeys = {"max_in_flight", "rate"};
constexpr std::array<std::string_view, 2> kKeyValues = {"none", "url_host"};
constexpr std::array<std::string_view, 6> kRedisKeys = {"url",      "stream",      "group",
                                                        "consumer", "claim_after", "results_ttl"};
constexpr std::array<std::string_view, 2> kOnErrorValues = {"continue", "cancel_all"};
constexpr int kMaxWorkers = 1024;

// `pool 'NAME'` for messages; a name can be anything until validated.
std::string pool_label(std::string_view name) { return "pool " + quote_text(name); }

std::string host_name() {
  std::array<char, 256> buffer{};
  if (::gethostname(buffer.data(), buffer.size() - 1) != 0 || buffer[0] == '\0') {
    return "localhost";
  }
  return buffer.data();
}

// Takes redis://[:password@]host:port[/db] apart; returns why it is malformed, empty when fine.
// The reason never quotes the url: it may hold a password.
std::string parse_redis_url(std::string_view url, RedisConfig& out) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) {
    return "must start with redis://";
  }
  auto rest = url.substr(kScheme.size());
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const auto user_info = rest.substr(0, at);
    if (user_info.empty() || user_info.front() != ':') {
      return "a password is given as :PASSWORD@ before the host";
    }
    out.password = std::string(user_info.substr(1));
    rest = rest.substr(at + 1);
  }
  const auto slash = rest.find('/');
  auto host_port = split_host_port(rest.substr(0, slash));
  if (!host_port || host_port->second == 0) {
    return "expected HOST:PORT after redis:// (port 1-65535)";
  }
  out.host = host_port->first;
  out.port = host_port->second;
  if (slash != std::string_view::npos) {
    const auto db = rest.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(db.data(), db.data() + db.size(), out.db);
    if (db.empty() || ec != std::errc() || ptr != db.data() + db.size() || out.db < 0) {
      return "the database after the '/' must be a number";
    }
  }
  return {};
}

// `key` is the `redis:` key, where a missing url is reported.
RedisConfig read_redis(Validator& v, const YamlNode& key, const YamlNode& node,
                       const std::string& pool) {
  RedisConfig redis;
  redis.stream = "barista:" + pool;
  redis.consumer = host_name();
  const auto where = pool_label(pool) + ": redis: ";
  if (!v.expect_map(node, pool_label(pool) + ": redis")) {
    return redis;
  }
  bool has_url = false;
  v.for_each_entry(node, where, kRedisKeys, [&](const YamlNode& key_node, const YamlNode& value) {
    const auto& key = key_node.text;
    const auto label = fmt::format("{}: redis.{}", pool_label(pool), key);
    if (key == "url") {
      has_url = true;
      if (auto url = v.string(value, label)) {
        if (auto problem = parse_redis_url(*url, redis); !problem.empty()) {
          v.error(value,
                  fmt::format("{}: expected redis://[:password@]host:port/db: {}", label, problem));
        }
        redis.url = std::move(*url);
      }
    } else if (key == "stream" || key == "group" || key == "consumer") {
      auto& field = key == "stream" ? redis.stream : key == "group" ? redis.group : redis.consumer;
      field = v.string(value, label).value_or(field);
    } else if (key == "claim_after") {
      redis.claim_after = v.duration(value, label, milliseconds(1)).value_or(redis.claim_after);
    } else if (key == "results_ttl") {
      // Redis expires keys in whole seconds.
      redis.results_ttl = v.duration(value, label, milliseconds(1000)).value_or(redis.results_ttl);
    }
  });
  if (!has_url) {
    v.error(key, fmt::format("{}missing required key 'url'", where));
  }
  return redis;
}

PerKey read_per_key(Validator& v, const YamlNode& node, const std::string& pool) {
  PerKey per_key;
  if (node.kind == Kind::kNull || !v.expect_map(node, pool_label(pool) + ": per_key")) {
    return per_key;
  }
  v.for_each_entry(node, pool_label(pool) + ": per_key: ", kPerKeyKeys,
                   [&](const YamlNode& key_node, const YamlNode& value) {
                     const auto label =
                         fmt::format("{}: per_key.{}", pool_label(pool), key_node.text);
                     if (key_node.text == "max_in_flight") {
                       per_key.max_in_flight =
                           static_cast<int>(v.integer(value, label, 1, kMaxWorkers).value_or(0));
                     } else if (value.kind != Kind::kNull) {
                       per_key.rate = v.rate(value, label);
                     }
                   });
  return per_key;
}

// The `config:` tree as the SDK's ConfigValue, keeping every node's location for the plugin's
// ConfigError. Depth is bounded by the YAML parser, so recursion is safe.
ConfigValue to_config_value(Validator& v, const YamlNode& node, const std::string& label) {
  ConfigValue out;
  out.line = node.line;
  out.column = node.column;
  switch (node.kind) {
    case Kind::kNull:
      out.kind = ConfigValue::Kind::kNull;
      break;
    case Kind::kScalar:
      out.kind = ConfigValue::Kind::kScalar;
      out.scalar = node.text;
      break;
    case Kind::kList:
      out.kind = ConfigValue::Kind::kList;
      for (const auto& item : node.items) {
        out.items.push_back(to_config_value(v, item, label));
      }
      break;
    case Kind::kMap:
      out.kind = ConfigValue::Kind::kMap;
      v.for_each_entry(node, label + ": ", {}, [&](const YamlNode& key, const YamlNode& value) {
        out.map.push_back({key.text, to_config_value(v, value, label + "." + key.text)});
      });
      break;
  }
  return out;
}

void read_setting(Validator& v, PoolConfig& pool, const YamlNode& key_node, const YamlNode& value,
                  const std::filesystem::path& base) {
  const auto& key = key_node.text;
  const auto label = fmt::format("{}: {}", pool_label(pool.name), key);
  if (key == "plugin") {
    if (auto plugin = v.string(value, label)) {
      // A path with a '/' is a file, relative to the config file; a bare name is looked up.
      const bool is_path = plugin->find('/') != std::string::npos;
      pool.plugin = is_path ? resolve_path(base, *plugin).string() : *plugin;
      pool.plugin_location = v.location_of(value);
    }
  } else if (key == "workers") {
    pool.workers = static_cast<int>(v.integer(value, label, 1, kMaxWorkers).value_or(1));
  } else if (key == "queue") {
    pool.queue = static_cast<std::size_t>(v.integer(value, label, 1, INT_MAX).value_or(64));
  } else if (key == "on_error") {
    if (auto policy = v.choice(value, label, kOnErrorValues)) {
      pool.on_error = *policy == "cancel_all" ? OnError::kCancelAll : OnError::kContinue;
    }
  } else if (key == "retries") {
    pool.retries = static_cast<int>(v.integer(value, label, 0, INT_MAX).value_or(0));
  } else if (key == "backoff") {
    pool.backoff = v.duration(value, label, milliseconds(0)).value_or(pool.backoff);
  } else if (key == "max_backoff") {
    pool.max_backoff = v.duration(value, label, milliseconds(0)).value_or(pool.max_backoff);
  } else if (key == "timeout") {
    // Empty means none, as when absent.
    if (value.kind != Kind::kNull) {
      pool.timeout = v.duration(value, label, milliseconds(1));
    }
  } else if (key == "rate") {
    if (value.kind != Kind::kNull) {
      pool.rate = v.rate(value, label);
    }
  } else if (key == "max_job_bytes") {
    pool.max_job_bytes = v.size(value, label, 1).value_or(pool.max_job_bytes);
  } else if (key == "max_crashes") {
    pool.max_crashes = static_cast<int>(v.integer(value, label, 1, INT_MAX).value_or(2));
  } else if (key == "key") {
    if (auto source = v.choice(value, label, kKeyValues)) {
      pool.key = *source == "url_host" ? KeySource::kUrlHost : KeySource::kNone;
    }
  } else if (key == "per_key") {
    pool.per_key = read_per_key(v, value, pool.name);
  } else if (key == "isolation") {
    if (auto isolation = v.choice(value, label, kIsolationValues)) {
      pool.isolation = *isolation == "process" ? Isolation::kProcess : Isolation::kThread;
    }
  } else if (key == "memory_max") {
    pool.memory_max = v.size(value, label, kMinMemoryMax);
  } else if (key == "max_throttled") {
    pool.max_throttled = v.duration(value, label, milliseconds(1)).value_or(pool.max_throttled);
  } else if (key == "config") {
    if (v.expect_map(value, label)) {
      auto root = to_config_value(v, value, label);
      root.kind = ConfigValue::Kind::kMap;  // an empty `config:` is an empty map
      pool.plugin_config = PluginConfig(std::move(root));
    }
  } else if (key == "redis") {
    pool.redis = read_redis(v, key_node, value, pool.name);
  }
}

}  // namespace

bool valid_pool_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::filesystem::path resolve_path(const std::filesystem::path& base, std::string_view text) {
  std::filesystem::path path(text);
  return path.is_absolute() ? path.lexically_normal() : (base / path).lexically_normal();
}

PoolConfig read_pool(Validator& v, const YamlNode& name, const YamlNode& body,
                     const std::filesystem::path& base) {
  PoolConfig pool;
  pool.name = name.text;
  pool.location = v.location_of(name);
  pool.plugin_location = pool.location;
  if (!valid_pool_name(pool.name)) {
    v.error(name, fmt::format("pool name {} is invalid: use 1 to 64 of a-z, 0-9, '_' and '-'",
                              describe(name)));
  }
  const auto where = pool_label(pool.name) + ": ";
  if (body.kind != Kind::kMap && body.kind != Kind::kNull) {
    v.error(body, fmt::format("{}expected a map of settings, got {}", where, describe(body)));
    return pool;
  }
  bool has_plugin = false;
  v.for_each_entry(body, where, kPoolKeys, [&](const YamlNode& key, const YamlNode& value) {
    has_plugin = has_plugin || key.text == "plugin";
    read_setting(v, pool, key, value, base);
  });
  if (!has_plugin) {
    v.error(name, fmt::format("{}missing required key 'plugin'", where));
  }
  if (pool.plugin == "exec") {
    pool.isolation = Isolation::kProcess;  // its program is a worker process by nature
  }
  if (pool.memory_max && pool.isolation != Isolation::kProcess) {
    v.error(name, fmt::format("{}memory_max caps worker processes: it needs isolation: process "
                              "(or plugin: exec)",
                              where));
  }
  return pool;
}

}  // namespace barista::config::detail
