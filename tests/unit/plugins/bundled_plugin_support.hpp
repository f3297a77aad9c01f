#pragma once

// Helpers for the bundled plugin tests: building `config:` maps, loading a plugin from
// BARISTA_PLUGIN_DIR the way the daemon does, running one attempt, temporary folders, and
// looking at processes and fds.

#include "daemon/plugin/plugin_library.hpp"
#include "tests/unit/temp_dir.hpp"

#include <barista/sdk.hpp>

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace barista::bundled_plugins_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// Builds a plugin's `config:` map: `Config().set("delay", "10ms").list("command", {...})`.
class Config {
 public:
  Config& set(std::string key, std::string scalar);
  Config& list(std::string key, const std::vector<std::string>& items);
  Config& map(std::string key);  ///< an empty map, for wrong-type tests
  [[nodiscard]] PluginConfig build() const { return PluginConfig(root_); }
  operator PluginConfig() const { return build(); }  // NOLINT: reads well at call sites

 private:
  ConfigValue root_{ConfigValue::Kind::kMap, {}, {}, {}, 1, 1};
  int next_line_ = 2;
};

/// Opens BARISTA_PLUGIN_DIR/NAME.so and creates one processor from `config`; throws what
/// PluginLibrary::create throws (ConfigError for a bad config).
plugin::ProcessorHandle make_processor(const std::string& name, const PluginConfig& config);

/// The text of the ConfigError that creating NAME with `config` throws ("" when none is thrown).
std::string config_error(const std::string& name, const PluginConfig& config);

/// One attempt's cancel flag and deadline, as the daemon's worker builds them.
class Attempt {
 public:
  /// No deadline.
  Attempt() : ctx_(&cancel_, Clock::time_point::max()) {}
  /// A deadline `timeout` from now.
  explicit Attempt(Clock::duration timeout) : ctx_(&cancel_, Clock::now() + timeout) {}
  Attempt(const Attempt&) = delete;
  Attempt& operator=(const Attempt&) = delete;

  Context& ctx() noexcept { return ctx_; }
  void cancel() noexcept { cancel_.store(true); }
  /// Raises the flag from another thread after `delay`; joined by the destructor.
  void cancel_after(Clock::duration delay);
  /// When cancel_after() raised the flag.
  [[nodiscard]] Clock::time_point cancelled_at() const noexcept;
  ~Attempt();

 private:
  std::atomic<bool> cancel_{false};
  Context ctx_;
  std::thread canceller_;
  std::atomic<Clock::rep> cancelled_at_{0};
};

/// Runs one attempt of `payload` (job id "1", attempt 1).
Outcome run(const plugin::ProcessorHandle& processor, std::string_view payload, Attempt& attempt);
/// Runs one attempt without a deadline.
Outcome run(const plugin::ProcessorHandle& processor, std::string_view payload);

using barista::testing::TempDir;

void write_file(const std::filesystem::path& path, std::string_view contents);
std::string read_file(const std::filesystem::path& path);

/// Lowercase hex SHA-256 computed here with OpenSSL, independently of the plugin.
std::string sha256_hex(std::string_view data);

/// Processes that are alive (not zombies) and members of process group `pgid`.
std::vector<pid_t> live_group_members(pid_t pgid);
/// Children of this process that are zombies (exited but never reaped).
std::vector<pid_t> zombie_children();
/// The number of fds this process has open.
int open_fd_count();

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns its last value.
template <class Condition>
bool eventually(Condition condition, Clock::duration timeout = 2s) {
  const auto until = Clock::now() + timeout;
  for (;;) {
    if (condition()) {
      return true;
    }
    if (Clock::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
}

/// Milliseconds since `start`.
inline double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace barista::bundled_plugins_test
