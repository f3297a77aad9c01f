#include "daemon/runtime/supervisor.hpp"

#include "daemon/runtime/backends.hpp"
#include "daemon/runtime/pool_plan.hpp"
#include "daemon/runtime/systemd_notify.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
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

bool Supervisor::stopping() const { return control_ && control_->stopping(); }

PoolMap Supervisor::pools() const {
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
        handlers_.handle(request, conn);
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
          spdlog::info("{}: stopping", sigdescr_np(static_cast<int>(info.ssi_signo)));
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
