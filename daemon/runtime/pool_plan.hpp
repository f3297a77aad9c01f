#pragma once

// The plan step of a start or a reload: for every pool of a config, what it needs before
// anything changes (its plugin loaded, processors made, a new pool built but not started), so
// that any problem rejects the whole config and the running one stays.

#include "daemon/batch/crash_journal.hpp"
#include "daemon/config/config.hpp"
#include "daemon/plugin/plugin_library.hpp"
#include "daemon/plugin/plugin_registry.hpp"
#include "daemon/pool/pool.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace barista::runtime {

/// What a pool of the new config needs: its plugin loaded and, unless nothing of it changed,
/// processors made with its `config:` (so that a factory that throws rejects the reload).
struct PoolPlan {
  enum class Kind { kAdd, kChange, kKeep };
  Kind kind = Kind::kKeep;
  config::PoolConfig config;
  std::shared_ptr<const plugin::PluginLibrary> library;
  std::vector<plugin::ProcessorHandle> processors;
  std::shared_ptr<pool::Pool> pool;  // kAdd: built, not started
  std::string change;                // what changed, for the log
};

/// Plans every pool of `next` against the `current` ones: loads plugins (through `registry`)
/// and makes processors and new pools; each problem goes to `errors` as FILE:LINE:COL: message.
/// `running`: the crash journal new spool pools mark.
std::vector<PoolPlan> plan_pools(const config::DaemonConfig& next,
                                 const std::map<std::string, std::shared_ptr<pool::Pool>>& current,
                                 plugin::PluginRegistry& registry,
                                 const std::shared_ptr<batch::RunningJobs>& running,
                                 std::vector<std::string>& errors);

/// The library a pool's processors come from: its plugin loaded (isolation: thread), or, for
/// isolation: process and plugin: exec, a hosted library whose processors run in worker
/// processes, after one worker was started to see that it can (isolation::check_worker_start).
/// `current`, the pool's running library, is kept when it hosts the same file the same way.
/// Throws PluginError or ConfigError.
std::shared_ptr<const plugin::PluginLibrary> library_for(
    const config::PoolConfig& pc, plugin::PluginRegistry& registry,
    const std::shared_ptr<const plugin::PluginLibrary>& current);

/// `FILE:LINE:COL: message` (or `FILE: message` without a line).
std::string located(const config::Location& where, const std::string& message);

}  // namespace barista::runtime
