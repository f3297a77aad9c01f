#include "daemon/runtime/supervisor.hpp"

#include "daemon/config/config_diff.hpp"
#include "daemon/config/config_loader.hpp"
#include "daemon/runtime/backends.hpp"
#include "daemon/runtime/systemd_notify.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

std::string located(const config::Location& where, const std::string& message) {
  if (where.line == 0) {
    return fmt::format("{}: {}", where.file, message);
  }
  return fmt::format("{}:{}:{}: {}", where.file, where.line, where.column, message);
}

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

std::uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

// What a pool of the new config needs: its plugin loaded and, unless nothing of it changed,
// processors made with its `config:` (so that a factory that throws rejects the reload).
struct PoolPlan {
  enum class Kind { kAdd, kChange, kKeep };
  Kind kind = Kind::kKeep;
  config::PoolConfig config;
  std::shared_ptr<const plugin::PluginLibrary> library;
  std::vector<plugin::ProcessorHandle> processors;
  std::shared_ptr<pool::Pool> pool;  // kAdd: built, not started
  std::string change;                // what changed, for the log
};

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

// Loads plugins and makes processors for every pool of `next`; problems go to `errors`.
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
      plan.library = registry.load(pc.plugin);
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

}  // namespace

StartupError::StartupError(std::vector<std::string> problems)
    : std::runtime_error(problems.empty() ? std::string("cannot start") : problems.front()),
      problems_(std::move(problems)) {}

void Supervisor::block_signals() {
  const auto set = handled_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the daemon
}

Supervisor::Supervisor(config::DaemonConfig config, std::optional<std::string> log_level_override)
    : config_file_(config.file),
      config_(std::move(config)),
      log_level_override_(std::move(log_level_override)),
      registry_(config_.plugin_path, config_.spool / ".plugins") {
  try {
    std::filesystem::create_directories(config_.spool);
    running_ = std::make_shared<batch::RunningJobs>(config_.spool);
  } catch (const std::exception& e) {
    throw StartupError({fmt::format("spool {}: {}", config_.spool.string(), e.what())});
  }
  if (const auto& left = running_->left_over(); !left.empty()) {
    spdlog::warn(
        "{} jobs were running when baristad last stopped unexpectedly (a crash or a kill): they "
        "run first, each alone",
        left.size());
    batch::note_crash(config_.spool, left);
  }
  std::vector<std::string> problems;
  auto plans = plan_pools(config_, {}, registry_, running_, problems);
  if (!problems.empty()) {
    throw StartupError(std::move(problems));
  }
  for (auto& plan : plans) {
    pools_.emplace(plan.config.name, std::move(plan.pool));
  }
  if (config_.metrics) {
    try {
      metrics_ = std::make_unique<Metrics>(
          *config_.metrics, [this] { return metric_views(); }, generation_.load());
    } catch (const std::exception& e) {
      throw StartupError({fmt::format("{}: {}", config_.file.string(), e.what())});
    }
  }
}

std::vector<Metrics::PoolView> Supervisor::metric_views() const {
  std::vector<Metrics::PoolView> views;
  for (const auto& [name, p] : pools()) {
    views.push_back(Metrics::view(p));
  }
  return views;
}

Supervisor::~Supervisor() = default;

std::shared_ptr<pool::Pool> Supervisor::find_pool(const std::string& name) const {
  std::shared_lock lock(pools_mutex_);
  auto it = pools_.find(name);
  return it == pools_.end() ? nullptr : it->second;
}

Supervisor::PoolMap Supervisor::pools() const {
  std::shared_lock lock(pools_mutex_);
  return pools_;
}

std::string Supervisor::status_line() const {
  std::size_t batches = 0;
  const auto all = pools();
  for (const auto& [name, p] : all) {
    batches += p->batches().size();
  }
  return fmt::format("STATUS={} pools, {} active batches, config generation {}", all.size(),
                     batches, generation_);
}

int Supervisor::run() {
  const auto set = handled_signals();
  const int sfd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    throw std::system_error(errno, std::generic_category(), "signalfd");
  }
  control_ = std::make_unique<control::ControlServer>(
      config_.control_socket, [this](const control::Request& request, control::Connection& conn) {
        handle(request, conn);
      });
  watcher_ = std::make_unique<InboxWatcher>([this](const std::string& name, std::string_view file) {
    auto p = find_pool(name);
    if (!p) {
      return;
    }
    try {
      p->claim(file);
    } catch (const std::exception& e) {
      spdlog::error("pool '{}': cannot claim inbox/{}: {}", name, file, e.what());
    }
  });
  // Pools read no batch until the jobs that were in flight at a crash have run, each alone.
  for (auto& [name, p] : pools_) {
    p->recover();
    p->start(/*hold=*/true);
  }
  crash_recovery_ = std::thread([this] { rerun_crashed(); });
  for (auto& [name, p] : pools_) {
    watcher_->watch(name, folders_of(*p).inbox());
  }
  reload_thread_ = std::thread([this] { reload_loop(); });
  // WATCHDOG=1 only while every pool's housekeeping thread keeps ticking (every 50 ms).
  watchdog_ = std::make_unique<Watchdog>([this] {
    const auto all = pools();
    return std::all_of(all.begin(), all.end(), [](const auto& entry) {
      return entry.second->alive(std::chrono::seconds(10));
    });
  });
  notify_systemd("READY=1\n" + status_line());
  spdlog::info("baristad ready: {} pools, spool {}, control socket {}", pools_.size(),
               config_.spool.string(), config_.control_socket.string());

  bool running = true;
  while (running) {
    pollfd fds[2] = {{sfd, POLLIN, 0}, {watcher_->fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    if ((fds[1].revents & POLLIN) != 0) {
      watcher_->handle_events();
    }
    if ((fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo info{};
      while (::read(sfd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        if (info.ssi_signo == SIGHUP) {
          spdlog::info("SIGHUP: reloading {}", config_file_.string());
          request_reload();  // merged with any reload already asked for
        } else {
          spdlog::info("{}: stopping", strsignal(static_cast<int>(info.ssi_signo)));
          running = false;
        }
      }
    }
  }
  ::close(sfd);
  stop();
  return 0;
}

void Supervisor::rerun_crashed() {
  std::size_t ran = 0;
  // One pool after another: while one runs a suspect, nothing else runs anywhere.
  for (const auto& [name, p] : pools()) {
    ran += p->run_suspects();
  }
  if (ran > 0) {
    spdlog::info("{} jobs that were in flight at the last crash have run alone", ran);
  }
  crash_recovered_.store(true);
  for (const auto& [name, p] : pools()) {
    p->release();
  }
}

std::uint64_t Supervisor::request_reload() {
  std::lock_guard lock(reload_mutex_);
  const auto ticket = ++reload_requested_;
  reload_cv_.notify_all();
  return ticket;
}

ReloadOutcome Supervisor::wait_reload(std::uint64_t ticket) {
  std::unique_lock lock(reload_mutex_);
  reload_cv_.wait(lock, [&] { return reload_done_ >= ticket || stopping_; });
  if (reload_done_ < ticket) {
    ReloadOutcome stopped;
    stopped.errors.emplace_back("baristad is stopping: the reload did not run");
    return stopped;
  }
  return last_reload_;
}

void Supervisor::reload_loop() {
  std::unique_lock lock(reload_mutex_);
  for (;;) {
    reload_cv_.wait(lock, [&] { return stopping_ || reload_requested_ > reload_done_; });
    if (stopping_) {
      return;
    }
    // Every request made up to now is answered by this one reload: SIGHUPs that arrive while
    // it runs are merged into the next.
    const auto covers = reload_requested_;
    lock.unlock();
    ReloadOutcome outcome;
    try {
      outcome = reload();
    } catch (const std::exception& e) {
      outcome.errors.push_back(fmt::format("reload failed: {}", e.what()));
    }
    if (metrics_) {
      outcome.ok ? metrics_->reload_applied(outcome.generation) : metrics_->reload_rejected();
    }
    lock.lock();
    last_reload_ = std::move(outcome);
    reload_done_ = covers;
    reload_cv_.notify_all();
  }
}

ReloadOutcome Supervisor::reload() {
  notify_systemd(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading", monotonic_usec()));
  ReloadOutcome out;
  const auto finish = [&] {
    out.generation = generation_;
    notify_systemd("READY=1\n" + status_line());
    return out;
  };
  config::DaemonConfig next;
  try {
    next = config::load_config_file(config_file_);
  } catch (const config::ConfigErrors& e) {
    for (const auto& issue : e.issues()) {
      out.errors.push_back(issue.to_string());
    }
  }
  if (out.errors.empty()) {
    if (next.spool != config_.spool) {
      out.errors.push_back(
          fmt::format("{}: spool: cannot change while baristad runs ({} -> {}): "
                      "restart it",
                      config_.file.string(), config_.spool.string(), next.spool.string()));
    }
    if (next.control_socket != config_.control_socket) {
      out.errors.push_back(fmt::format(
          "{}: control_socket: cannot change while baristad runs "
          "({} -> {}): restart it",
          config_.file.string(), config_.control_socket.string(), next.control_socket.string()));
    }
  }
  std::vector<PoolPlan> plans;
  if (out.errors.empty()) {
    registry_.set_plugin_path(next.plugin_path);
    // Jobs are marked running in the spool the daemon started with.
    plans = plan_pools(next, pools(), registry_, next.spool == config_.spool ? running_ : nullptr,
                       out.errors);
    if (out.errors.empty() && next.metrics != config_.metrics) {
      // The new endpoint is bound before the old one goes: a reload that cannot serve metrics
      // where asked is rejected, and the old endpoint stays.
      try {
        if (!next.metrics) {
          metrics_.reset();
        } else if (metrics_) {
          metrics_->listen(*next.metrics);
        } else {
          metrics_ = std::make_unique<Metrics>(
              *next.metrics, [this] { return metric_views(); }, generation_.load());
        }
      } catch (const std::exception& e) {
        out.errors.push_back(fmt::format("{}: {}", next.file.string(), e.what()));
      }
    }
    if (!out.errors.empty()) {
      registry_.set_plugin_path(config_.plugin_path);
    }
  }
  if (!out.errors.empty()) {
    spdlog::error("reload rejected; generation {} keeps running:", generation_);
    for (const auto& e : out.errors) {
      spdlog::error("  {}", e);
    }
    return finish();
  }

  // Everything is loaded and checked: apply pool by pool.
  std::vector<std::pair<std::string, std::shared_ptr<pool::Pool>>> removed;
  {
    std::unique_lock lock(pools_mutex_);
    for (auto it = pools_.begin(); it != pools_.end();) {
      const bool kept = std::any_of(plans.begin(), plans.end(),
                                    [&](const PoolPlan& p) { return p.config.name == it->first; });
      if (kept) {
        ++it;
      } else {
        removed.emplace_back(it->first, it->second);
        it = pools_.erase(it);
      }
    }
    for (const auto& plan : plans) {
      if (plan.kind == PoolPlan::Kind::kAdd) {
        pools_.emplace(plan.config.name, plan.pool);
      }
    }
    const auto timeout = next.shutdown_timeout;
    config_ = std::move(next);
    for (auto& [name, p] : removed) {
      watcher_->unwatch(name);
      out.changes.push_back(fmt::format("removed pool '{}'", name));
      // It takes no new batch; its running jobs finish; its unstarted jobs stay in active/.
      // A pool removed twice without being re-added cannot be: a removed pool is not in pools_.
      draining_[name] = std::thread([p = p, timeout] { p->stop(timeout); });
    }
  }
  for (auto& plan : plans) {
    const auto& name = plan.config.name;
    if (plan.kind == PoolPlan::Kind::kChange) {
      out.changes.push_back(fmt::format("pool '{}': {}", name, plan.change));
      find_pool(name)->reconfigure(plan.config, plan.library, std::move(plan.processors));
    } else if (plan.kind == PoolPlan::Kind::kAdd) {
      std::thread drain;
      {
        std::unique_lock lock(pools_mutex_);
        if (auto it = draining_.find(name); it != draining_.end()) {
          drain = std::move(it->second);
          draining_.erase(it);
        }
      }
      // The pool was removed earlier and comes back: its old self must let go of its batches
      // before they are resumed here. Joined without the pool lock, which status and the
      // watchdog need.
      if (drain.joinable()) {
        drain.join();
      }
      plan.pool->recover();
      plan.pool->start(/*hold=*/!crash_recovered_.load());
      watcher_->watch(name, folders_of(*plan.pool).inbox());
      out.changes.push_back(fmt::format("added pool '{}'", name));
    }
  }
  if (!log_level_override_) {
    spdlog::set_level(spdlog::level::from_str(config_.log_level));
  }
  ++generation_;
  out.ok = true;
  spdlog::info("reload: config generation {} applied: {}", generation_,
               out.changes.empty() ? std::string("no changes")
                                   : fmt::format("{}", fmt::join(out.changes, "; ")));
  return finish();
}

void Supervisor::stop() {
  notify_systemd("STOPPING=1\nSTATUS=stopping");
  {
    std::lock_guard lock(reload_mutex_);
    stopping_ = true;
    reload_cv_.notify_all();
  }
  if (reload_thread_.joinable()) {
    reload_thread_.join();
  }
  control_->stop();
  // Pools stop side by side, so the whole stop takes shutdown_timeout at most, not one per pool.
  std::vector<std::thread> stoppers;
  const auto timeout = config_.shutdown_timeout;
  for (auto& [name, p] : pools_) {
    stoppers.emplace_back([p = p, timeout] { p->stop(timeout); });
  }
  for (auto& t : stoppers) {
    t.join();
  }
  if (crash_recovery_.joinable()) {
    crash_recovery_.join();  // its pools have stopped: it returns
  }
  for (auto& [name, t] : draining_) {
    if (t.joinable()) {
      t.join();
    }
  }
  metrics_.reset();
  watchdog_.reset();
  // A clean stop: no job is in flight, whatever a stuck worker still holds.
  running_->clear_all();
  spdlog::info("baristad stopped");
}

}  // namespace barista::runtime
