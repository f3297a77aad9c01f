#include "daemon/isolation/hosting.hpp"

#include "daemon/isolation/child_process.hpp"
#include "daemon/isolation/remote_processor.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdlib>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#ifndef BARISTA_DEFAULT_WORKER_HOST
#define BARISTA_DEFAULT_WORKER_HOST "/usr/lib/barista/barista-worker"
#endif

namespace barista::isolation {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr auto kCheckTimeout = std::chrono::seconds(10);

json to_json(const ConfigValue& v) {
  json j = {{"line", v.line}, {"column", v.column}};
  switch (v.kind) {
    case ConfigValue::Kind::kNull:
      j["null"] = true;
      break;
    case ConfigValue::Kind::kScalar:
      j["scalar"] = v.scalar;
      break;
    case ConfigValue::Kind::kList: {
      auto& items = j["list"] = json::array();
      for (const auto& item : v.items) {
        items.push_back(to_json(item));
      }
      break;
    }
    case ConfigValue::Kind::kMap: {
      auto& entries = j["map"] = json::array();
      for (const auto& [key, value] : v.map) {
        entries.push_back(json::array({key, to_json(value)}));
      }
      break;
    }
  }
  return j;
}

ConfigValue from_json(const json& j) {
  ConfigValue v;
  v.line = j.value("line", 0);
  v.column = j.value("column", 0);
  if (const auto it = j.find("scalar"); it != j.end()) {
    v.kind = ConfigValue::Kind::kScalar;
    v.scalar = it->get<std::string>();
  } else if (const auto list = j.find("list"); list != j.end()) {
    v.kind = ConfigValue::Kind::kList;
    for (const auto& item : *list) {
      v.items.push_back(from_json(item));
    }
  } else if (const auto map = j.find("map"); map != j.end()) {
    v.kind = ConfigValue::Kind::kMap;
    for (const auto& entry : *map) {
      v.map.push_back({entry.at(0).get<std::string>(), from_json(entry.at(1))});
    }
  }
  return v;
}

// plugin: exec's `config:`: command (a list, required) and env (a map of strings).
Command exec_command(const PluginConfig& cfg) {
  cfg.expect_only({"command", "env"});
  Command command;
  command.argv = cfg.get_string_list("command", {});
  if (command.argv.empty() || command.argv.front().empty()) {
    const auto* v = cfg.find("command");
    throw ConfigError("command",
                      "the program to run is required, as a list: command: [python3, worker.py]",
                      v != nullptr ? v->line : 0, v != nullptr ? v->column : 0);
  }
  if (const auto* env = cfg.find("env")) {
    if (env->kind != ConfigValue::Kind::kMap) {
      throw ConfigError("env", "expected a map of NAME: value", env->line, env->column);
    }
    for (const auto& [name, value] : env->map) {
      if (value.kind != ConfigValue::Kind::kScalar || name.empty() ||
          name.find('=') != std::string::npos) {
        throw ConfigError("env." + name, "expected NAME: value (a string)", value.line,
                          value.column);
      }
      command.env[name] = value.scalar;
    }
  }
  return command;
}

// The command of a worker for `pool`.
Command worker_command(const config::PoolConfig& pool, const std::filesystem::path& plugin_file) {
  Command command;
  if (pool.plugin == kExecPlugin) {
    command = exec_command(pool.plugin_config);
  } else {
    command.argv = {worker_host_path().string(), plugin_file.string()};
    command.env["BARISTA_PLUGIN_CONFIG"] = config_to_json(pool.plugin_config.root());
  }
  command.env["BARISTA_POOL"] = pool.name;
  command.memory_max = pool.memory_max;
  return command;
}

// "barista-worker: config-error KEY LINE COLUMN MESSAGE" on its stderr: the plugin's ConfigError.
[[noreturn]] void rethrow_host_error(const std::string& text, const plugin::PluginLibrary& lib) {
  constexpr std::string_view kTag = "config-error\t";
  if (const auto at = text.find(kTag); at != std::string::npos) {
    std::vector<std::string> parts;
    std::string_view rest = std::string_view(text).substr(at + kTag.size());
    for (int i = 0; i < 3; ++i) {
      const auto tab = rest.find('\t');
      if (tab == std::string_view::npos) {
        break;
      }
      parts.emplace_back(rest.substr(0, tab));
      rest.remove_prefix(tab + 1);
    }
    if (parts.size() == 3) {
      const auto nl = rest.find('\n');
      throw ConfigError(parts[0], std::string(rest.substr(0, nl)), std::atoi(parts[1].c_str()),
                        std::atoi(parts[2].c_str()));
    }
  }
  throw plugin::PluginError(
      fmt::format("plugin '{}' ({}): {}", lib.name(), lib.path().string(), text));
}

}  // namespace

std::string config_to_json(const ConfigValue& root) { return to_json(root).dump(); }

ConfigValue config_from_json(std::string_view text) { return from_json(json::parse(text)); }

std::filesystem::path worker_host_path() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto beside = self.parent_path() / "barista-worker";
    if (std::filesystem::exists(beside, ec)) {
      return beside;
    }
  }
  return BARISTA_DEFAULT_WORKER_HOST;
}

std::shared_ptr<const plugin::PluginLibrary> hosted_library(
    const config::PoolConfig& pool, const std::filesystem::path& plugin_file) {
  auto like = pool.plugin == kExecPlugin
                  ? plugin::PluginLibrary::built_in(std::string(kExecPlugin), "1.0.0", nullptr)
                  : plugin::PluginLibrary::inspect(plugin_file);
  auto health = std::make_shared<plugin::WorkerHealth>();
  auto base = pool;  // what the processors are made from (their config: comes with each call)
  // barista-worker takes frames; a user's exec program, a job at a time.
  const bool frames = pool.plugin != kExecPlugin;
  return plugin::PluginLibrary::hosted(
      *like,
      [base, plugin_file, health, frames](const PluginConfig& cfg) -> std::unique_ptr<Processor> {
        auto pool_now = base;
        pool_now.plugin_config = cfg;
        return std::make_unique<RemoteProcessor>(
            WorkerSpec{pool_now.name, worker_command(pool_now, plugin_file), frames}, health);
      },
      health);
}

void check_worker_start(const config::PoolConfig& pool, const plugin::PluginLibrary& library) {
  auto command = worker_command(pool, library.path());
  const bool exec = pool.plugin == kExecPlugin;
  if (!exec) {
    command.argv.insert(command.argv.begin() + 1, "--check");
  }
  ChildProcess child(command);
  std::string err;
  const auto sink = [&](std::string_view line) {
    if (err.size() < 4096) {
      err.append(line).push_back('\n');
    }
  };
  // An exec program reads end of input at once: a worker should exit 0 then. One still running
  // after a second has started well enough.
  child.close_input();
  std::string line;
  const auto limit = ChildProcess::Clock::now() + (exec ? std::chrono::seconds(1) : kCheckTimeout);
  ChildProcess::Read read = ChildProcess::Read::kLine;
  while (read == ChildProcess::Read::kLine) {  // until its stdout closes
    read = child.read_line(line, limit, 1 << 20, nullptr, sink);
  }
  child.drain_stderr(sink);
  // Ended: a moment to be reaped with its own status. Still running: it started.
  const auto how =
      child.stop(read == ChildProcess::Read::kClosed ? milliseconds(1000) : milliseconds(0));
  child.drain_stderr(sink);
  const auto status = child.wait_status();
  if (exec) {
    // Killed by us (still running): fine. Exited 0 at end of input: fine.
    const bool ours = status && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL;
    if (ours || (status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)) {
      return;
    }
  } else if (status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) {
    return;
  }
  while (!err.empty() && err.back() == '\n') {
    err.pop_back();
  }
  std::string why = fmt::format("its worker process does not start: {}", how);
  if (status && WIFEXITED(*status) && WEXITSTATUS(*status) == 127) {
    why = fmt::format("its worker program cannot be run: {} not found or not executable",
                      command.argv.front());
  }
  if (pool.memory_max) {
    why += fmt::format(" (under memory_max {} bytes)", *pool.memory_max);
  }
  if (!err.empty()) {
    if (err.find("config-error\t") != std::string::npos) {
      rethrow_host_error(err, library);
    }
    why += ": " + err;
  }
  throw plugin::PluginError(
      exec ? fmt::format("plugin 'exec': {}", why)
           : fmt::format("plugin '{}' ({}): {}", library.name(), library.path().string(), why));
}

}  // namespace barista::isolation
