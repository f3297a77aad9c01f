#pragma once

// Starting child processes for the harness: fork/exec with stdout and stderr sent to given
// files, killed with the test process if it dies (PR_SET_PDEATHSIG), and reaped.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace barista::itest::detail {

/// Starts `argv[0]` (a path) with `argv`, the test's environment plus `env` (NAME=VALUE,
/// overriding), stdin from /dev/null, stdout to `out_fd` and stderr to `err_fd`, in the folder
/// `cwd` (the test's own when empty). Throws HarnessError when fork fails; a failed exec or
/// chdir exits the child with 127.
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, int out_fd,
            int err_fd, const std::string& cwd = "");

/// The test's environment with `extra` (NAME=VALUE) added or replacing, and `unset` names removed.
std::vector<std::string> merged_environment(const std::vector<std::string>& extra,
                                            const std::vector<std::string>& unset = {});
/// argv/envp for exec: pointers into `strings`, then nullptr.
std::vector<char*> pointers(std::vector<std::string>& strings);
/// A wait status as a shell shows it: the exit code, or 128 + N when killed by signal N.
int exit_code_of(int status);

/// Reaps `pid` if it has exited, waiting up to `timeout` (polling every 5 ms). Returns its exit
/// code (128 + N when killed by signal N), or nullopt when it is still running.
std::optional<int> reap(pid_t pid, std::chrono::milliseconds timeout);

/// SIGKILLs `pid` and reaps it.
void kill_and_reap(pid_t pid);

}  // namespace barista::itest::detail
