#pragma once

// Pools whose processors run in worker processes (docs/workers.md): `isolation: process`, where
// each worker is barista-worker hosting the pool's plugin file, and `plugin: exec`, where each
// is the user's program. Both speak the exec protocol (exec_protocol.hpp) to a RemoteProcessor.

#include "daemon/config/config.hpp"
#include "daemon/plugin/plugin_library.hpp"

#include <barista/plugin_config.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace barista::isolation {

/// The name of the bundled exec plugin (built into baristad: no file).
inline constexpr std::string_view kExecPlugin = "exec";

/// The worker host: barista-worker beside the running program, else the installed one.
std::filesystem::path worker_host_path();

/// The library of a pool with `isolation: process` or `plugin: exec`: `plugin_file` (ignored
/// for exec) is checked but not loaded here. Its processors are RemoteProcessors sharing one
/// WorkerHealth. Throws PluginError.
std::shared_ptr<const plugin::PluginLibrary> hosted_library(
    const config::PoolConfig& pool, const std::filesystem::path& plugin_file);

/// Starts one worker as the pool would, to see that it can: barista-worker loads the plugin and
/// calls its factory (a bad `config:` value comes back as the plugin's ConfigError, with its
/// location); an exec program is started with its stdin closed and must not fail. Both under
/// the pool's memory_max. Throws ConfigError or PluginError with the reason.
void check_worker_start(const config::PoolConfig& pool, const plugin::PluginLibrary& library);

/// The `config:` tree as JSON (with each value's line and column), and back: how the daemon
/// hands it to barista-worker (environment variable BARISTA_PLUGIN_CONFIG).
std::string config_to_json(const ConfigValue& root);
ConfigValue config_from_json(std::string_view text);

}  // namespace barista::isolation
