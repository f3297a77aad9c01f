#include "daemon/runtime/check_config.hpp"

#include "daemon/config/config_loader.hpp"
#include "daemon/plugin/plugin_registry.hpp"
#include "daemon/runtime/pool_plan.hpp"

#include <barista/plugin_config.hpp>

#include <algorithm>

#include <fmt/format.h>

namespace barista::runtime {
namespace {

// Loads the pool's plugin and makes one processor, as a worker would; returns the problem.
std::optional<config::ConfigIssue> check_pool(plugin::PluginRegistry& registry,
                                              const config::PoolConfig& pool) {
  try {
    auto library = library_for(pool, registry, nullptr);
    // Hosted: library_for() started a worker, which made one in its process.
    if (!library->health()) {
      auto processor = library->create(pool.plugin_config);
    }
    return std::nullopt;
  } catch (const ConfigError& e) {
    // The plugin knows which key is wrong and where its value is; a key that is missing has no
    // place of its own, so it is reported at the pool.
    auto where = pool.location;
    if (e.line() > 0) {
      where.line = e.line();
      where.column = std::max(e.column(), 1);
    }
    const auto key = e.key().empty() ? std::string("config") : "config." + e.key();
    return config::ConfigIssue{where, fmt::format("pool '{}': {}: {}", pool.name, key, e.what())};
  } catch (const std::exception& e) {
    return config::ConfigIssue{pool.plugin_location,
                               fmt::format("pool '{}': {}", pool.name, e.what())};
  }
}

}  // namespace

std::vector<std::string> check_config_file(const std::filesystem::path& file) {
  std::vector<std::string> problems;
  config::DaemonConfig cfg;
  try {
    cfg = config::load_config_file(file);
  } catch (const config::ConfigErrors& e) {
    for (const auto& issue : e.issues()) {
      problems.push_back(issue.to_string());
    }
    return problems;
  }
  // No cache folder: a check loads the files in place and keeps nothing.
  plugin::PluginRegistry registry(cfg.plugin_path);
  for (const auto& pool : cfg.pools) {
    if (auto issue = check_pool(registry, pool)) {
      problems.push_back(issue->to_string());
    }
  }
  return problems;
}

int run_check_config(const std::filesystem::path& file, std::ostream& out, std::ostream& err) {
  const auto problems = check_config_file(file);
  if (problems.empty()) {
    out << file.string() << ": ok\n";
    return 0;
  }
  for (const auto& problem : problems) {
    err << problem << '\n';
  }
  return 1;
}

}  // namespace barista::runtime
