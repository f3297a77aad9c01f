#include "daemon/runtime/pool_plan.hpp"

#include "daemon/config/config_diff.hpp"
#include "daemon/isolation/hosting.hpp"
#include "daemon/runtime/backends.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace barista::runtime {
namespace {

std::string describe_change(const config::PoolConfig& a, const config::PoolConfig& b,
                            bool library_changed) {
  std::vector<std::string> what;
  if (a.workers != b.workers) {
    what.push_back(fmt::format("workers {} -> {}", a.workers, b.workers));
  }
  if (library_changed || a.plugin != b.plugin) {
    what.push_back(fmt::format("plugin {}", b.plugin));
  }
  if (!config::same_values(a.plugin_config.root(), b.plugin_config.root())) {
    what.emplace_back("config");
  }
  auto copy = b;
  copy.workers = a.workers;
  copy.plugin = a.plugin;
  copy.plugin_config = a.plugin_config;
  if (!config::same_pool(a, copy)) {
    what.emplace_back("settings");
  }
  return fmt::format("{}", fmt::join(what, ", "));
}

}  // namespace

std::shared_ptr<const plugin::PluginLibrary> library_for(
    const config::PoolConfig& pc, plugin::PluginRegistry& registry,
    const std::shared_ptr<const plugin::PluginLibrary>& current) {
  if (pc.isolation != config::Isolation::kProcess) {
    return registry.load(pc.plugin);
  }
  const bool exec = pc.plugin == isolation::kExecPlugin;
  const auto file = exec ? std::filesystem::path() : registry.resolve(pc.plugin);
  auto library = isolation::hosted_library(pc, file);
  // The same file, hosted the same way: the running workers are kept (a reload restarts
  // processes only when something of theirs changed).
  if (current && current->health() && current->path() == library->path() &&
      current->digest() == library->digest() && current->name() == library->name()) {
    return current;
  }
  isolation::check_worker_start(pc, *library);
  return library;
}

std::string located(const config::Location& where, const std::string& message) {
  if (where.line == 0) {
    return fmt::format("{}: {}", where.file, message);
  }
  return fmt::format("{}:{}:{}: {}", where.file, where.line, where.column, message);
}

std::vector<PoolPlan> plan_pools(const config::DaemonConfig& next,
                                 const std::map<std::string, std::shared_ptr<pool::Pool>>& current,
                                 plugin::PluginRegistry& registry,
                                 const std::shared_ptr<batch::RunningJobs>& running,
                                 std::vector<std::string>& errors) {
  std::vector<PoolPlan> plans;
  for (const auto& pc : next.pools) {
    PoolPlan plan;
    plan.config = pc;
    try {
      auto it = current.find(pc.name);
      if (it != current.end() &&
          it->second->settings()->config.redis.has_value() != pc.redis.has_value()) {
        throw std::runtime_error(
            "a reload cannot move a pool between the spool and redis: remove the pool in one "
            "reload and add it back in the next");
      }
      const auto& running_library = it == current.end() ? nullptr : it->second->settings()->library;
      // Hosted processors are made with the pool's settings (its command, its memory_max):
      // settings that change make a new library.
      const bool hosting_changed =
          it != current.end() && (it->second->settings()->config.isolation != pc.isolation ||
                                  it->second->settings()->config.memory_max != pc.memory_max);
      plan.library = library_for(pc, registry, hosting_changed ? nullptr : running_library);
      if (plan.library->health()) {
        plan.library->health()->try_again();  // a reload tries workers that died at start again
      }
      if (it == current.end()) {
        plan.kind = PoolPlan::Kind::kAdd;
        plan.pool = make_pool(pc, plan.library, next.spool, running);
      } else {
        const auto settings = it->second->settings();
        const bool library_changed = settings->library != plan.library;
        if (!library_changed && config::same_pool(settings->config, pc)) {
          plan.kind = PoolPlan::Kind::kKeep;
        } else {
          plan.kind = PoolPlan::Kind::kChange;
          plan.change = describe_change(settings->config, pc, library_changed);
          if (library_changed || !config::same_values(settings->config.plugin_config.root(),
                                                      pc.plugin_config.root())) {
            plan.processors = pool::Pool::make_processors(pc, *plan.library);
          }
        }
      }
    } catch (const ConfigError& e) {
      config::Location where = pc.plugin_location;
      if (e.line() > 0) {
        where.line = e.line();
        where.column = e.column();
      }
      errors.push_back(
          located(where, fmt::format("pool '{}': config.{}: {}", pc.name, e.key(), e.what())));
      continue;
    } catch (const std::exception& e) {
      errors.push_back(
          located(pc.plugin_location, fmt::format("pool '{}': {}", pc.name, e.what())));
      continue;
    }
    plans.push_back(std::move(plan));
  }
  return plans;
}

}  // namespace barista::runtime
