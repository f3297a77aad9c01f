// A reload, as load -> plan -> apply: the file is parsed and checked (load_next), every pool's
// plugin loaded and processors and new pools made (plan), and only when all of that worked is
// anything changed (apply). Any error rejects the whole reload; the running config stays.
#include "daemon/config/config_loader.hpp"
#include "daemon/runtime/backends.hpp"
#include "daemon/runtime/pool_plan.hpp"
#include "daemon/runtime/supervisor.hpp"
#include "daemon/runtime/systemd_notify.hpp"

#include <algorithm>
#include <ctime>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

std::uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

}  // namespace

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
  auto next = load_next(out);
  std::vector<PoolPlan> plans;
  if (next) {
    plans = plan(*next, out);
  }
  if (out.errors.empty()) {
    apply(std::move(*next), std::move(plans), out);
  } else {
    spdlog::error("reload rejected; generation {} keeps running:", generation_);
    for (const auto& e : out.errors) {
      spdlog::error("  {}", e);
    }
  }
  out.generation = generation_;
  notify_systemd("READY=1\n" + status_line());
  return out;
}

std::optional<config::DaemonConfig> Supervisor::load_next(ReloadOutcome& out) const {
  config::DaemonConfig next;
  try {
    next = config::load_config_file(config_file_);
  } catch (const config::ConfigErrors& e) {
    for (const auto& issue : e.issues()) {
      out.errors.push_back(issue.to_string());
    }
    return std::nullopt;
  }
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
  if (!out.errors.empty()) {
    return std::nullopt;
  }
  return next;
}

std::vector<PoolPlan> Supervisor::plan(const config::DaemonConfig& next, ReloadOutcome& out) {
  registry_.set_plugin_path(next.plugin_path);
  // Jobs are marked running in the spool the daemon started with.
  auto plans = plan_pools(next, pools(), registry_, running_, out.errors);
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
  return plans;
}

void Supervisor::apply(config::DaemonConfig next, std::vector<PoolPlan> plans, ReloadOutcome& out) {
  // Everything is loaded and checked: first the pool map (removed pools drain, new ones are
  // listed), then each pool changed or started.
  swap_pools(std::move(next), plans, out);
  for (auto& plan : plans) {
    const auto& name = plan.config.name;
    if (plan.kind == PoolPlan::Kind::kChange) {
      out.changes.push_back(fmt::format("pool '{}': {}", name, plan.change));
      find_pool(name)->reconfigure(plan.config, plan.library, std::move(plan.processors));
    } else if (plan.kind == PoolPlan::Kind::kAdd) {
      start_added(plan);
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
}

void Supervisor::swap_pools(config::DaemonConfig next, const std::vector<PoolPlan>& plans,
                            ReloadOutcome& out) {
  std::unique_lock lock(pools_mutex_);
  std::vector<std::pair<std::string, std::shared_ptr<pool::Pool>>> removed;
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

void Supervisor::start_added(const PoolPlan& plan) {
  const auto& name = plan.config.name;
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
}

}  // namespace barista::runtime
