#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace barista::isolation {

/// What to start: a program, its arguments and what its environment adds.
struct Command {
  std::vector<std::string> argv;            ///< argv[0] is looked up in PATH
  std::map<std::string, std::string> env;   ///< added to (or replacing in) the daemon's
  std::optional<std::uint64_t> memory_max;  ///< RLIMIT_AS of the process, in bytes
};

/// The program could not be started (fork, pipes; an exec failure shows as exit status 127).
class SpawnError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A worker process with pipes to its stdin, stdout and stderr, in a process group of its own
/// (so that a signal reaches what it started too), killed with SIGKILL should the daemon die
/// (PR_SET_PDEATHSIG). Lines are read from its stdout; its stderr is handed over as lines as
/// they come. Used by one thread at a time.
class ChildProcess {
 public:
  using Clock = std::chrono::steady_clock;

  /// Starts `command`. Throws SpawnError.
  explicit ChildProcess(const Command& command);
  /// Kills the process group (SIGKILL) and reaps the process.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  enum class Read { kLine, kTimeout, kStopped, kClosed, kTooLong };
  /// Writes `line` and a newline; false when the process does not take it before `deadline`
  /// (its stdin full) or has closed its stdin.
  bool write_line(std::string_view line, Clock::time_point deadline);
  /// Writes `data` as it is; false as write_line().
  bool write_all(std::string_view data, Clock::time_point deadline);
  /// Reads the next stdout line (without its newline) into `line`, until `deadline`; `stop` is
  /// asked every 20 ms (kStopped when it says so). Its stderr's lines go to `on_stderr`
  /// meanwhile. kClosed: stdout ended (the process exited, most likely); kTooLong: a line
  /// longer than `max_bytes`.
  Read read_line(std::string& line, Clock::time_point deadline, std::size_t max_bytes,
                 const std::function<bool()>& stop,
                 const std::function<void(std::string_view)>& on_stderr);
  /// Reads exactly `n` bytes of stdout (what follows a frame's header line) into `out`, as
  /// read_line() reads a line (kLine once they are all there).
  Read read_bytes(std::string& out, std::size_t n, Clock::time_point deadline,
                  const std::function<void(std::string_view)>& on_stderr);
  /// Closes its stdin: it reads end of input.
  void close_input();
  /// Hands over what its stderr holds now, without waiting.
  void drain_stderr(const std::function<void(std::string_view)>& on_stderr);

  /// Sends `sig` to its process group.
  void signal(int sig) const;
  /// Waits up to `grace` for it to exit; then SIGKILL to the group. Reaps it. Returns how it
  /// ended, as exit_text() says.
  std::string stop(std::chrono::milliseconds grace);
  /// True while it has not exited (reaps it when it has).
  bool running();
  /// "exited with status 3", "killed by signal 11 (SIGSEGV)"; empty while it runs.
  [[nodiscard]] const std::string& exit_text() const noexcept { return exit_text_; }
  /// Its wait status once it exited.
  [[nodiscard]] std::optional<int> wait_status() const noexcept { return status_; }

 private:
  bool reap(bool wait);
  // Waits until stdout is readable, `deadline` or `stop`; reads what it holds into out_buffer_.
  // nullopt while there may be more; else how the read ends.
  std::optional<Read> fill(Clock::time_point deadline, const std::function<bool()>& stop,
                           const std::function<void(std::string_view)>& on_stderr);
  bool split_stderr(const std::function<void(std::string_view)>& on_stderr);

  pid_t pid_ = -1;
  int in_ = -1;   // its stdin
  int out_ = -1;  // its stdout
  int err_ = -1;  // its stderr
  std::string out_buffer_;
  std::string err_buffer_;
  std::optional<int> status_;
  std::string exit_text_;
};

/// "killed by signal 11 (SIGSEGV)", "exited with status 3".
std::string describe_wait_status(int status);

}  // namespace barista::isolation
