#pragma once

// Runs one command to completion under a job's deadline and cancellation, in its own process
// group, collecting its stdout and the tail of its stderr.

#include <barista/sdk.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace barista_shell {

/// How a run ended.
enum class RunEnd {
  kExited,          ///< the command exited; `code` is its exit status
  kSignalled,       ///< the command was killed by signal `code`
  kDeadline,        ///< the deadline passed; the process group was killed
  kCancelled,       ///< the job was cancelled; the process group was killed
  kOutputTooLarge,  ///< stdout passed max_output; the process group was killed
  kSpawnFailed,     ///< the command could not be started; `code` is the errno
  kSystemError,     ///< a pipe or poll failed; `code` is the errno
};

struct RunResult {
  RunEnd end = RunEnd::kExited;
  int code = 0;
  std::string out;       ///< everything the command wrote to stdout (at most max_output bytes)
  std::string err_tail;  ///< the last kStderrTail bytes it wrote to stderr
};

/// How much of stderr is kept for the error message.
inline constexpr std::size_t kStderrTail = 1024;

/// Runs `argv` (PATH lookup as execvp does). `input`, when set, is written to the command's stdin,
/// which is then closed; otherwise stdin is /dev/null. Anything still running in the command's
/// process group when it exits, or when the run is cut short, is killed with SIGKILL; the command
/// itself is always reaped before this returns.
RunResult run_child(const std::vector<std::string>& argv, std::optional<std::string_view> input,
                    std::size_t max_output, const barista::Context& ctx);

}  // namespace barista_shell
