#include "daemon/config/config_diff.hpp"

#include <algorithm>

namespace barista::config {

bool same_values(const ConfigValue& a, const ConfigValue& b) {
  if (a.kind != b.kind || a.scalar != b.scalar || a.items.size() != b.items.size() ||
      a.map.size() != b.map.size()) {
    return false;
  }
  if (!std::equal(a.items.begin(), a.items.end(), b.items.begin(), same_values)) {
    return false;
  }
  return std::equal(a.map.begin(), a.map.end(), b.map.begin(), [](const auto& x, const auto& y) {
    return x.first == y.first && same_values(x.second, y.second);
  });
}

bool same_pool(const PoolConfig& a, const PoolConfig& b) {
  return a.name == b.name && a.plugin == b.plugin && a.workers == b.workers && a.queue == b.queue &&
         a.on_error == b.on_error && a.retries == b.retries && a.backoff == b.backoff &&
         a.max_backoff == b.max_backoff && a.timeout == b.timeout && a.rate == b.rate &&
         a.max_job_bytes == b.max_job_bytes && a.max_crashes == b.max_crashes &&
         a.redis == b.redis && a.key == b.key && a.per_key == b.per_key &&
         a.max_throttled == b.max_throttled && a.isolation == b.isolation &&
         a.memory_max == b.memory_max &&
         same_values(a.plugin_config.root(), b.plugin_config.root());
}

}  // namespace barista::config
