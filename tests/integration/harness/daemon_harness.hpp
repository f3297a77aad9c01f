#pragma once

#include "tests/sanitized.hpp"

// The integration harness: starts the real baristad (BARISTAD_BIN) on a temporary spool, drops
// batch files into its inboxes the way users do, waits for batches to end and reads what they
// left behind (results.jsonl, summary.json), sends signals, and runs the `barista` CLI.
//
// Every failure of the harness itself (a daemon that does not come up, a batch that does not
// end in time) throws HarnessError with the daemon's log in the message, so Catch2 shows why.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace barista::itest {

/// Memory bounds are checked in the plain build only (tests/sanitized.hpp).
using testing::kSanitized;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

/// A failure of the harness (not of an assertion): timeouts, a daemon that died, I/O errors.
class HarnessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A folder made with mkdtemp under /tmp, removed with everything in it at the end.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// One line of results.jsonl.
struct JobResult {
  std::string id;
  bool id_is_string = false;  ///< docs/reference.md#results: `id` is always a JSON string
  std::string status;
  std::int64_t attempts = -1;
  double ms = -1;
  std::optional<std::string> output;
  std::optional<std::string> error;
  std::int64_t throttled = 0;  ///< 0 when the line has no "throttled"
  std::string line;            ///< the raw line, for failure messages
};

/// summary.json.
struct Summary {
  std::string batch;
  std::string pool;
  std::string state;
  std::int64_t jobs = -1;
  std::int64_t ok = -1;
  std::int64_t failed = -1;
  std::int64_t timeout = -1;
  std::int64_t cancelled = -1;
  std::int64_t invalid = -1;
  bool has_first_error = false;  ///< false when `first_error` is null
  std::string first_error_id;
  std::string first_error;
  std::string started;
  std::string finished;
  double seconds = -1;
  std::string text;  ///< the raw file, for failure messages
};

/// Parses one results.jsonl line; throws HarnessError when it is not a JSON object with the
/// documented keys (docs/reference.md#results) of the right types.
JobResult parse_result_line(std::string_view line);
/// Parses a whole results.jsonl (a missing file is empty).
std::vector<JobResult> read_results(const std::filesystem::path& file);
/// Calls `fn` for each line of a results.jsonl without keeping them (for huge batches).
void for_each_result(const std::filesystem::path& file,
                     const std::function<void(const JobResult&)>& fn);
/// Number of complete lines of a file (0 when missing).
std::size_t count_lines(const std::filesystem::path& file);
/// Parses summary.json; throws HarnessError when malformed.
Summary read_summary(const std::filesystem::path& file);
/// Reads a whole file ("" when missing).
std::string slurp(const std::filesystem::path& file);
/// Writes a file (creating it or replacing its contents).
void write_file(const std::filesystem::path& file, std::string_view content);

/// Results keyed by id; throws HarnessError when an id appears twice.
std::map<std::string, JobResult> by_id(const std::vector<JobResult>& results);

/// A batch that ended: where its folder went, and what it holds.
struct BatchEnd {
  std::string folder;  ///< "done" or "failed"
  std::filesystem::path dir;
  Summary summary;
  std::vector<JobResult> results;
  Clock::time_point seen;  ///< when the harness first saw summary.json
};

/// What a program run to completion left: its exit code and output.
struct ProgramResult {
  int exit_code = -1;  ///< 128 + N when killed by signal N
  std::string out;
  std::string err;
};

/// Runs a program, waits for it (killing it after `timeout`) and captures stdout and stderr.
/// `env` entries (NAME=VALUE) are added to the test's environment.
ProgramResult run_program(const std::vector<std::string>& argv, seconds timeout = seconds(30),
                          const std::vector<std::string>& env = {});
/// Runs the `barista` CLI (BARISTA_BIN) with `args`.
ProgramResult run_barista(const std::vector<std::string>& args, seconds timeout = seconds(30));
/// Runs baristad (BARISTAD_BIN) with `args`, to completion (for --check-config, bad configs).
ProgramResult run_baristad(const std::vector<std::string>& args, seconds timeout = seconds(30),
                           const std::vector<std::string>& env = {});

/// The built plugin folders the configs list in plugin_path.
std::filesystem::path plugin_dir();
std::filesystem::path fixture_dir();

/// A baristad on its own temporary spool. The config is written at construction; start() runs
/// the daemon (again after a stop, on the same spool). The destructor always SIGKILLs and reaps
/// a daemon still running, then removes the temporary folder.
class Daemon {
 public:
  /// `pools`: the body of `pools:`, each pool name indented by two spaces, e.g.
  /// "  echo:\n    plugin: echo\n    workers: 4\n". `extra`: more top-level YAML lines
  /// (e.g. "shutdown_timeout: 5s\n").
  explicit Daemon(std::string pools, std::string extra = "");
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon();

  /// Replaces the config file (same spool, control socket and plugin_path), for the next start.
  void set_pools(const std::string& pools, const std::string& extra = "");
  /// Replaces the config file with `edit(generated text)`, for the next start.
  void edit_config(const std::function<std::string(std::string)>& edit);

  /// A command that runs baristad for the next starts (its argv, BARISTAD_BIN and the daemon's
  /// arguments appended), such as `fiu-run -x`; it must exec it, keeping the pid.
  void set_launcher(std::vector<std::string> argv) { launcher_ = std::move(argv); }

  /// Starts baristad and waits until it is ready: every pool's inbox exists and the log says
  /// "baristad ready". Throws HarnessError (with the log) after `timeout` or if it exits.
  void start(milliseconds timeout = milliseconds(10'000));
  /// Starts baristad without waiting.
  void spawn();
  /// True while the daemon process has not been reaped.
  [[nodiscard]] bool running() const noexcept { return pid_ > 0; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  /// Sends a signal to the daemon.
  void signal(int sig) const;
  /// Waits for the daemon to exit; its exit code (128 + N when killed by signal N), or nullopt
  /// when it is still running after `timeout`.
  std::optional<int> wait_exit(milliseconds timeout);
  /// SIGKILL and reap.
  void kill9();

  /// The log of the current (or last) run: baristad's stderr and stdout.
  [[nodiscard]] std::string log() const;
  /// Waits until the current run's log contains `text`; false after `timeout`.
  bool wait_log(std::string_view text, milliseconds timeout);

  [[nodiscard]] const std::filesystem::path& root() const noexcept { return dir_.path(); }
  /// The daemon's working folder (inside root(), so that a path wrongly resolved against the
  /// working folder still lands in the temporary folder).
  [[nodiscard]] std::filesystem::path cwd() const { return dir_.path() / "cwd"; }
  [[nodiscard]] std::filesystem::path config_file() const { return dir_.path() / "barista.yaml"; }
  [[nodiscard]] std::filesystem::path spool() const { return dir_.path() / "spool"; }
  [[nodiscard]] std::filesystem::path socket() const { return dir_.path() / "barista.sock"; }
  [[nodiscard]] std::filesystem::path pool_dir(const std::string& pool) const {
    return spool() / pool;
  }
  [[nodiscard]] std::filesystem::path inbox(const std::string& pool) const {
    return pool_dir(pool) / "inbox";
  }
  [[nodiscard]] std::filesystem::path active(const std::string& pool, const std::string& id) const {
    return pool_dir(pool) / "active" / id;
  }

  /// Drops a batch the way users should: writes `inbox/.NAME.tmp`, then renames it to NAME.
  /// Returns when the rename happened.
  Clock::time_point drop(const std::string& pool, const std::string& name,
                         std::string_view content);
  /// Same, for a file too big to build in memory: `write` fills the stream of the temp file.
  Clock::time_point drop_with(const std::string& pool, const std::string& name,
                              const std::function<void(std::FILE*)>& write);

  /// Waits until done/ID/summary.json or failed/ID/summary.json exists, then reads the batch.
  BatchEnd wait_batch(const std::string& pool, const std::string& id,
                      milliseconds timeout = milliseconds(30'000));
  /// Same, without reading results.jsonl (huge batches).
  BatchEnd wait_batch_summary(const std::string& pool, const std::string& id,
                              milliseconds timeout = milliseconds(30'000));
  /// Waits until `pred()` holds, polling every 10 ms; false after `timeout`. While waiting,
  /// throws HarnessError if the daemon exits.
  bool wait_until(const std::function<bool()>& pred, milliseconds timeout);

  /// Peak resident memory (VmHWM) of the running daemon, in KiB; nullopt if unreadable.
  [[nodiscard]] std::optional<std::uint64_t> vm_hwm_kib() const;

  /// The last part of the log, for failure messages.
  [[nodiscard]] std::string log_tail(std::size_t bytes = 4000) const;

 private:
  [[nodiscard]] std::string config_text() const;
  void write_config();
  void check_alive();

  TempDir dir_;
  std::string pools_;
  std::string extra_;
  std::vector<std::string> pool_names_;
  std::vector<std::string> launcher_;
  pid_t pid_ = -1;
  int runs_ = 0;
  std::filesystem::path log_file_;
};

}  // namespace barista::itest
