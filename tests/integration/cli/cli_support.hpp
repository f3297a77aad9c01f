#pragma once

// Running the `barista` CLI the ways users do, beyond the harness's run_barista(): with a
// file or a pipe on stdin, extra environment, stderr on a terminal (a pseudo-terminal), in the
// background (to cancel or kill it midway), as another user, and with its peak memory.

#include "tests/integration/harness/daemon_harness.hpp"

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace barista::itest::cli {

/// How to run the CLI.
struct CliOptions {
  std::vector<std::string> env;      ///< NAME=VALUE added to (or replacing) the environment
  std::vector<std::string> unset;    ///< names removed from the environment
  std::filesystem::path stdin_file;  ///< stdin from this file (default /dev/null)
  /// stdin from a pipe this function writes to (on a thread of its own; the pipe is closed after).
  std::function<void(int fd)> stdin_writer;
  bool stderr_tty = false;  ///< stderr on a pseudo-terminal (its output is in `err`)
  bool as_nobody = false;   ///< run as uid/gid 65534 (only when the test runs as root)
  std::string cwd;          ///< working folder (default: the test's)
  seconds timeout = seconds(60);
};

/// What a CLI run left.
struct CliRun {
  int exit_code = -1;  ///< 128 + N when killed by signal N
  std::string out;
  std::string err;
  std::int64_t max_rss_kib = -1;  ///< peak resident memory of the process (getrusage)
};

/// A `barista` started in the background. The destructor kills and reaps it if still running.
class CliProcess {
 public:
  CliProcess(const std::vector<std::string>& args, const CliOptions& options = {});
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;
  ~CliProcess();

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// True until the process has exited (it is not reaped: wait() collects it).
  [[nodiscard]] bool running() const;
  /// stdout so far.
  [[nodiscard]] std::string out() const;
  /// stderr so far (what the terminal showed, with stderr_tty).
  [[nodiscard]] std::string err() const;
  void signal(int sig) const;
  /// Waits for the exit (killing it after `timeout`: then exit_code is -1) and collects it.
  CliRun wait(std::chrono::milliseconds timeout);

 private:
  void stop_readers();

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;  // a memfd, or -1 with a terminal
  int pty_fd_ = -1;  // the terminal's master side
  struct Shared;
  std::shared_ptr<Shared> shared_;
  std::vector<std::thread> threads_;
};

/// Runs `barista ARGS` to completion.
CliRun run_cli(const std::vector<std::string>& args, const CliOptions& options = {});

/// `--socket PATH` of the daemon, followed by `args`.
std::vector<std::string> with_socket(const Daemon& d, std::vector<std::string> args);

/// A pool section for Daemon: `name` running `plugin` with `workers`, then `more` lines
/// (each indented by four spaces, e.g. "    on_error: cancel_all\n").
std::string pool(const std::string& name, const std::string& plugin, int workers,
                 const std::string& more = "");

/// Non-empty lines of `text`.
std::vector<std::string> lines_of(const std::string& text);

}  // namespace barista::itest::cli
