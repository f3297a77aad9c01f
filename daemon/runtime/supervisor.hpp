#pragma once

#include "daemon/config/config.hpp"
#include "daemon/plugin/plugin_registry.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/runtime/inbox_watcher.hpp"

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace barista::runtime {

/// Problems that keep the daemon from starting, each as `FILE:LINE:COL: message`.
class StartupError : public std::runtime_error {
 public:
  explicit StartupError(std::vector<std::string> problems);
  [[nodiscard]] const std::vector<std::string>& problems() const noexcept { return problems_; }

 private:
  std::vector<std::string> problems_;
};

/// Builds the pools of a config, resumes their unfinished batches, feeds them from their
/// inboxes, and stops them. The daemon's main loop runs here.
class Supervisor {
 public:
  /// Loads every plugin and creates every pool (one processor per worker). Throws StartupError.
  explicit Supervisor(config::DaemonConfig config);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor();

  /// Runs until SIGTERM or SIGINT, then stops gracefully. The signals must be blocked in every
  /// thread before any thread starts (see block_signals()). Returns the exit code.
  int run();

  /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and threads it starts later), so
  /// that run() receives them through a signalfd.
  static void block_signals();

 private:
  void stop();

  config::DaemonConfig config_;
  plugin::PluginRegistry registry_;
  std::map<std::string, std::unique_ptr<pool::Pool>> pools_;
};

}  // namespace barista::runtime
