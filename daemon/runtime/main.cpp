// baristad: the Barista daemon. Runs in the foreground (systemd style) until SIGTERM/SIGINT.
#include "daemon/config/config_loader.hpp"
#include "daemon/runtime/check_config.hpp"
#include "daemon/runtime/supervisor.hpp"

#include <barista/abi.hpp>

#include <sys/resource.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <iostream>
#include <optional>

namespace {

void set_up_logging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("baristad");
  // systemd's journal adds its own timestamp; a terminal or a file gets one from us.
  // Read before any thread starts. NOLINTNEXTLINE(concurrency-mt-unsafe)
  logger->set_pattern(::getenv("JOURNAL_STREAM") != nullptr ? "%l: %v"
                                                            : "%Y-%m-%dT%H:%M:%S.%e %l: %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

// Every control connection and open batch costs a descriptor: take the hard limit (systemd
// gives services 1024 soft, 524288 hard), as the select()-era soft limit is not meant for daemons.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int run_daemon(const std::string& config_file, const std::optional<std::string>& log_level) {
  barista::config::DaemonConfig config;
  try {
    config = barista::config::load_config_file(config_file);
  } catch (const barista::config::ConfigErrors& e) {
    for (const auto& issue : e.issues()) {
      std::cerr << issue.to_string() << '\n';
    }
    return 1;
  }
  set_up_logging(log_level.value_or(config.log_level));
  raise_descriptor_limit();
  barista::runtime::Supervisor::block_signals();
  try {
    barista::runtime::Supervisor supervisor(std::move(config), log_level);
    return supervisor.run();
  } catch (const barista::runtime::StartupError& e) {
    // Printed bare, like config errors, so that FILE:LINE:COL lines are easy to act on.
    for (const auto& problem : e.problems()) {
      std::cerr << problem << '\n';
    }
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
  }
  return 1;
}

int run(int argc, char** argv) {
  CLI::App app{"baristad: the Barista batch processing daemon"};
  std::string config_file = BARISTA_DEFAULT_CONFIG;
  bool check = false;
  std::optional<std::string> log_level;
  app.add_option("--config", config_file, "Configuration file")->capture_default_str();
  app.add_flag("--check-config", check,
               "Validate the configuration (parse it, load every plugin, create one processor per "
               "pool) and exit: 0 valid, 1 invalid");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error (overrides the config)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.set_version_flag("--version",
                       fmt::format("baristad {} (SDK ABI {})", BARISTA_VERSION, barista::kSdkAbi));
  CLI11_PARSE(app, argc, argv);

  if (check) {
    return barista::runtime::run_check_config(config_file, std::cout, std::cerr);
  }
  return run_daemon(config_file, log_level);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "baristad: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "baristad: unexpected error\n";
  }
  return 1;
}
