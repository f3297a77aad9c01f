#pragma once

#include "daemon/isolation/child_process.hpp"
#include "daemon/plugin/frames.hpp"
#include "daemon/plugin/worker_health.hpp"

#include <barista/processor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace barista::isolation {

/// What a pool's worker processes are: the program to start, and how to speak of it.
struct WorkerSpec {
  std::string pool;     ///< for the log
  Command command;      ///< barista-worker with a plugin, or the user's program (plugin: exec)
  bool frames = false;  ///< it takes frames (frames.hpp): barista-worker does
};

/// A processor whose jobs run in a worker process (docs/workers.md): one job at a time, sent as
/// an exec protocol line, its result read back. The process is started at the first job and
/// again, with backoff, after it died. While the job runs it watches the job's deadline and
/// cancellation: at either, a cancel message; one second later SIGTERM to the process group;
/// two seconds more, SIGKILL.
///
/// A worker that exits, is killed, writes a line that is not the job's result, or ignores the
/// deadline costs only the job it ran: process() throws plugin::WorkerCrash, which the engine
/// charges as a crash. Workers that keep dying before their first answer are reported to the
/// pool's WorkerHealth, which stops their starts after a minute of it.
///
/// barista-worker also takes frames (process_frame): several jobs in one message, their results
/// back in a few. A frame's deadline is its progress: no result for `timeout` (and a little)
/// means the job running overran; the same cancel, SIGTERM and SIGKILL follow. A breakdown
/// loses the results not yet read: those jobs are kLost, and the engine runs each alone.
class RemoteProcessor final : public Processor, public plugin::FrameProcessor {
 public:
  using Clock = std::chrono::steady_clock;

  RemoteProcessor(WorkerSpec spec, std::shared_ptr<plugin::WorkerHealth> health);
  ~RemoteProcessor() override;
  RemoteProcessor(const RemoteProcessor&) = delete;
  RemoteProcessor& operator=(const RemoteProcessor&) = delete;

  Outcome process(Context& ctx, const Job& job) override;

  [[nodiscard]] bool takes_frames() const noexcept override { return spec_.frames; }
  void process_frame(std::span<const plugin::FrameJob> jobs, const plugin::FrameRun& run,
                     std::vector<plugin::FrameResult>& out, std::string& lost_why) override;

  /// The running worker's pid (0 when none), for tests.
  [[nodiscard]] int pid() const noexcept;

  /// How long a worker is given to end after a cancel message or the deadline, before
  /// SIGTERM; and after SIGTERM, before SIGKILL.
  static constexpr auto kTermAfter = std::chrono::seconds(1);
  static constexpr auto kKillAfter = std::chrono::seconds(2);

 private:
  // Starts a worker unless one runs (waiting out the restart backoff first); false when the
  // job was cancelled meanwhile.
  bool ensure_started(const Context& ctx);
  // The worker broke down while it ran `job`: kill it, note it, throw WorkerCrash.
  [[noreturn]] void crashed(const std::string& why, std::chrono::milliseconds grace);
  // Cancel message, then SIGTERM, then SIGKILL: the job's result if it came meanwhile.
  std::optional<Outcome> wind_down(const Job& job, const char* because);
  // Ends the worker, logs how, and counts it as a start failure if it never answered.
  // `grace`: how long it may take to exit before SIGKILL.
  std::string end_worker(const std::string& why, std::chrono::milliseconds grace);
  void log_stderr(std::string_view line);
  void note_dropped_stderr();
  // The next start waits 100 ms after a breakdown, doubling while they follow each other.
  void back_off();
  // A worker died before it answered a job; logged once when that makes the pool give up.
  void note_start_failure(const std::string& why);
  // Ends a worker that wrote between jobs (a line for no job).
  void drop_stray_output();
  // Reads one results message of a frame of `total` into `out`; empty, or why the worker broke
  // down (it is ended then).
  std::string read_results(std::size_t total, std::vector<plugin::FrameResult>& out,
                           Clock::time_point deadline, ChildProcess::Read& read,
                           const std::function<bool()>& stop);
  // A job answered: the worker is sound.
  void note_answer();

  WorkerSpec spec_;
  std::shared_ptr<plugin::WorkerHealth> health_;
  std::unique_ptr<ChildProcess> child_;
  bool answered_ = false;  // the running worker answered a job
  bool started_before_ = false;
  std::chrono::milliseconds backoff_{0};
  Clock::time_point next_start_{};
  const std::function<void(std::string_view)> stderr_sink_ = [this](std::string_view line) {
    log_stderr(line);
  };
  // stderr: at most kStderrLines a second reach the log; the rest are counted.
  Clock::time_point stderr_window_{};
  int stderr_lines_ = 0;
  int stderr_dropped_ = 0;
};

}  // namespace barista::isolation
