#include "daemon/runtime/supervisor.hpp"

#include "daemon/runtime/systemd_notify.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <thread>

#include <fmt/format.h>
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

}  // namespace

StartupError::StartupError(std::vector<std::string> problems)
    : std::runtime_error(problems.empty() ? std::string("cannot start") : problems.front()),
      problems_(std::move(problems)) {}

void Supervisor::block_signals() {
  const auto set = handled_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

Supervisor::Supervisor(config::DaemonConfig config)
    : config_(std::move(config)), registry_(config_.plugin_path, config_.spool / ".plugins") {
  std::vector<std::string> problems;
  for (const auto& pc : config_.pools) {
    if (pc.redis) {
      problems.push_back(located(pc.location, fmt::format(
          "pool '{}': redis pools are not supported by this build of baristad", pc.name)));
      continue;
    }
    try {
      auto library = registry_.load(pc.plugin);
      pools_.emplace(pc.name, std::make_unique<pool::Pool>(pc, library, config_.spool));
    } catch (const ConfigError& e) {
      config::Location where = pc.plugin_location;
      if (e.line() > 0) {
        where.line = e.line();
        where.column = e.column();
      }
      problems.push_back(located(where, fmt::format("pool '{}': config.{}: {}", pc.name, e.key(), e.what())));
    } catch (const std::exception& e) {
      problems.push_back(located(pc.plugin_location, fmt::format("pool '{}': {}", pc.name, e.what())));
    }
  }
  if (!problems.empty()) {
    throw StartupError(std::move(problems));
  }
}

Supervisor::~Supervisor() = default;

int Supervisor::run() {
  const auto set = handled_signals();
  const int sfd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    throw std::system_error(errno, std::generic_category(), "signalfd");
  }
  InboxWatcher watcher([this](const std::string& pool, std::string_view name) {
    auto it = pools_.find(pool);
    if (it == pools_.end()) {
      return;
    }
    try {
      it->second->claim(name);
    } catch (const std::exception& e) {
      spdlog::error("pool '{}': cannot claim inbox/{}: {}", pool, name, e.what());
    }
  });
  for (auto& [name, p] : pools_) {
    p->recover();
    p->start();
  }
  for (auto& [name, p] : pools_) {
    watcher.watch(name, p->spool().inbox());
  }
  notify_systemd(fmt::format("READY=1\nSTATUS=serving {} pools", pools_.size()));
  spdlog::info("baristad ready: {} pools, spool {}", pools_.size(), config_.spool.string());

  bool running = true;
  while (running) {
    pollfd fds[2] = {{sfd, POLLIN, 0}, {watcher.fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    if ((fds[1].revents & POLLIN) != 0) {
      watcher.handle_events();
    }
    if ((fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo info{};
      while (::read(sfd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        if (info.ssi_signo == SIGHUP) {
          spdlog::warn("SIGHUP: reloading the configuration is not available yet; ignored");
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

void Supervisor::stop() {
  notify_systemd("STOPPING=1\nSTATUS=stopping");
  // Pools stop side by side, so the whole stop takes shutdown_timeout at most, not one per pool.
  std::vector<std::thread> stoppers;
  for (auto& [name, p] : pools_) {
    stoppers.emplace_back([&p = p, this] { p->stop(config_.shutdown_timeout); });
  }
  for (auto& t : stoppers) {
    t.join();
  }
  spdlog::info("baristad stopped");
}

}  // namespace barista::runtime
