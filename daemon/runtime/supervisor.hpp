#pragma once

#include "daemon/batch/crash_journal.hpp"
#include "daemon/config/config.hpp"
#include "daemon/control/control_server.hpp"
#include "daemon/plugin/plugin_registry.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/runtime/batch_store.hpp"
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

/// Problems that keep the daemon from starting, each as `FILE:LINE:COL: message`.
class StartupError : public std::runtime_error {
 public:
  explicit StartupError(std::vector<std::string> problems);
  [[nodiscard]] const std::vector<std::string>& problems() const noexcept { return problems_; }

 private:
  std::vector<std::string> problems_;
};

/// The outcome of one reload.
struct ReloadOutcome {
  bool ok = false;
  std::uint64_t generation = 0;      ///< the config generation running afterwards
  std::vector<std::string> changes;  ///< what changed, one line each
  std::vector<std::string> errors;   ///< why it was rejected, `FILE:LINE:COL: message` each
};

/// Builds the pools of a config, resumes their unfinished batches, feeds them from their inboxes,
/// answers the control socket, reloads the config, and stops. The daemon's main loop runs here.
class Supervisor {
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
  using PoolMap = std::map<std::string, std::shared_ptr<pool::Pool>>;

  // reload (supervisor.cpp)
  std::uint64_t request_reload();
  ReloadOutcome wait_reload(std::uint64_t ticket);
  void reload_loop();
  ReloadOutcome reload();
  void stop();
  void rerun_crashed();

  // control requests (control_handlers.cpp)
  void handle(const control::Request& request, control::Connection& conn);
  void handle_submit(const control::Request& request, control::Connection& conn);
  void handle_status(control::Connection& conn);
  void handle_cancel(const control::Request& request, control::Connection& conn);
  void handle_results(const control::Request& request, control::Connection& conn);
  void handle_wait(const control::Request& request, control::Connection& conn);
  void handle_reload(control::Connection& conn);

  /// The batch a request names ("ID" or "POOL/ID") in its pool's store, or null once an error
  /// reply has been written (unknown, in more than one pool, a store that cannot be asked).
  std::unique_ptr<FoundBatch> locate(const std::string& ref, control::Connection& conn) const;

  [[nodiscard]] std::shared_ptr<pool::Pool> find_pool(const std::string& name) const;
  [[nodiscard]] PoolMap pools() const;
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
