#pragma once

#include "daemon/batch/crash_journal.hpp"
#include "daemon/config/config.hpp"
#include "daemon/control/control_server.hpp"
#include "daemon/plugin/plugin_registry.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/runtime/control_handlers.hpp"
#include "daemon/runtime/inbox_watcher.hpp"
#include "daemon/runtime/metrics.hpp"
#include "daemon/runtime/watchdog.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace barista::runtime {

struct PoolPlan;

/// Problems that keep the daemon from starting, each as `FILE:LINE:COL: message`.
class StartupError : public std::runtime_error {
 public:
  explicit StartupError(std::vector<std::string> problems);
  [[nodiscard]] const std::vector<std::string>& problems() const noexcept { return problems_; }

 private:
  std::vector<std::string> problems_;
};

/// Builds the pools of a config, resumes their unfinished batches, feeds them from their inboxes,
/// answers the control socket, reloads the config, and stops. The daemon's main loop runs here.
class Supervisor final : private Daemon {
 public:
  /// Loads every plugin and creates every pool (one processor per worker). Throws StartupError.
  /// `log_level_override`: the --log-level given on the command line, which reloads keep.
  Supervisor(config::DaemonConfig config, std::optional<std::string> log_level_override);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor();

  /// Runs until SIGTERM or SIGINT, then stops gracefully; SIGHUP reloads. The signals must be
  /// blocked in every thread before any thread starts (see block_signals()). Returns the exit code.
  int run();

  /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and threads it starts later), so
  /// that run() receives them through a signalfd.
  static void block_signals();

 private:
  // reload (reload.cpp): load -> plan -> apply
  std::uint64_t request_reload();
  ReloadOutcome wait_reload(std::uint64_t ticket);
  void reload_loop();
  ReloadOutcome reload();
  /// The config file parsed and checked against what cannot change live; nullopt on an error.
  [[nodiscard]] std::optional<config::DaemonConfig> load_next(ReloadOutcome& out) const;
  /// Plugins loaded, processors and new pools made, the metrics endpoint bound; problems go
  /// to `out.errors`, and then nothing running has changed.
  std::vector<PoolPlan> plan(const config::DaemonConfig& next, ReloadOutcome& out);
  /// Makes `next` the running config: pools removed, changed and added as planned.
  void apply(config::DaemonConfig next, std::vector<PoolPlan> plans, ReloadOutcome& out);
  void swap_pools(config::DaemonConfig next, const std::vector<PoolPlan>& plans,
                  ReloadOutcome& out);
  void start_added(const PoolPlan& plan);

  // life (supervisor.cpp)
  void stop();
  void rerun_crashed();

  // what the control requests ask of the daemon (Daemon)
  [[nodiscard]] std::shared_ptr<pool::Pool> find_pool(const std::string& name) const override;
  [[nodiscard]] PoolMap pools() const override;
  [[nodiscard]] std::uint64_t generation() const override { return generation_.load(); }
  ReloadOutcome reload_and_wait() override { return wait_reload(request_reload()); }
  [[nodiscard]] bool stopping() const override;

  [[nodiscard]] std::string status_line() const;
  [[nodiscard]] std::vector<Metrics::PoolView> metric_views() const;

  const std::filesystem::path config_file_;
  config::DaemonConfig config_;  // the running config; written by reloads under pools_mutex_
  std::optional<std::string> log_level_override_;
  plugin::PluginRegistry registry_;
  std::shared_ptr<batch::RunningJobs> running_;  // what each worker runs, for crash recovery
  std::atomic<bool> crash_recovered_{false};     // the jobs in flight at a crash have run again
  std::thread crash_recovery_;

  mutable std::shared_mutex pools_mutex_;
  PoolMap pools_;
  std::map<std::string, std::thread> draining_;  // removed pools finishing their running jobs
  std::unique_ptr<InboxWatcher> watcher_;
  ControlHandlers handlers_{*this};
  std::unique_ptr<control::ControlServer> control_;

  std::mutex reload_mutex_;
  std::condition_variable reload_cv_;
  std::uint64_t reload_requested_ = 0;
  std::uint64_t reload_done_ = 0;
  ReloadOutcome last_reload_;
  std::atomic<std::uint64_t> generation_{1};
  bool stopping_ = false;
  std::thread reload_thread_;
  std::unique_ptr<Watchdog> watchdog_;
  // Last, so that it goes first: scrapes end before the pools they read.
  std::unique_ptr<Metrics> metrics_;
};

}  // namespace barista::runtime
