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

/// `FILE:LINE:COL: message` (or `FILE: message` without a line).
std::string located(const config::Location& where, const std::string& message);

}  // namespace barista::runtime
