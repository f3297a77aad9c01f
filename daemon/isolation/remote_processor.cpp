#include "daemon/isolation/remote_processor.hpp"

#include "daemon/isolation/exec_protocol.hpp"

#include <algorithm>
#include <csignal>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::isolation {
namespace {

using std::chrono::milliseconds;

constexpr auto kFirstBackoff = milliseconds(100);
constexpr auto kMaxBackoff = milliseconds(10'000);
// A worker must take a job line within this (it reads nothing: it hangs).
constexpr auto kWriteTimeout = std::chrono::seconds(30);
constexpr int kStderrLines = 20;  // a second, per worker
// A worker whose stdout closed is given this long to exit, so that its exit status is its own
// (a segfault's signal, an exit code) rather than our SIGKILL.
constexpr auto kExitGrace = milliseconds(1000);

}  // namespace

RemoteProcessor::RemoteProcessor(WorkerSpec spec, std::shared_ptr<plugin::WorkerHealth> health)
    : spec_(std::move(spec)), health_(std::move(health)) {}

RemoteProcessor::~RemoteProcessor() {
  if (child_) {
    // End of input asks it to go; half a second to exit, then SIGKILL.
    child_->close_input();
    child_->stop(milliseconds(500));
  }
}

int RemoteProcessor::pid() const noexcept { return child_ ? child_->pid() : 0; }

void RemoteProcessor::note_dropped_stderr() {
  if (stderr_dropped_ > 0) {
    spdlog::warn("pool '{}': worker {}: {} more stderr lines not logged (at most {} a second)",
                 spec_.pool, child_ ? child_->pid() : 0, stderr_dropped_, kStderrLines);
    stderr_dropped_ = 0;
  }
}

void RemoteProcessor::log_stderr(std::string_view line) {
  const auto now = Clock::now();
  if (now >= stderr_window_ + std::chrono::seconds(1)) {
    note_dropped_stderr();
    stderr_window_ = now;
    stderr_lines_ = 0;
    stderr_dropped_ = 0;
  }
  if (++stderr_lines_ > kStderrLines) {
    ++stderr_dropped_;
    return;
  }
  constexpr std::size_t kMaxLogged = 1024;
  spdlog::warn("pool '{}': worker {}: {}{}", spec_.pool, child_ ? child_->pid() : 0,
               line.substr(0, kMaxLogged), line.size() > kMaxLogged ? "…" : "");
}

std::string RemoteProcessor::end_worker(const std::string& why, milliseconds grace) {
  auto how = child_->stop(grace);
  child_->drain_stderr(stderr_sink_);
  const auto pid = child_->pid();
  note_dropped_stderr();
  child_.reset();
  back_off();
  // Killed by us at once (it broke the protocol): how it ended says nothing more.
  auto text = why.empty() ? how : grace.count() == 0 ? why : fmt::format("{} ({})", why, how);
  if (!answered_) {
    note_start_failure(text);
  }
  spdlog::warn("pool '{}': worker process {} {}; restarted in {} ms", spec_.pool, pid, text,
               backoff_.count());
  return text;
}

void RemoteProcessor::back_off() {
  backoff_ = backoff_.count() == 0 ? kFirstBackoff : std::min(backoff_ * 2, kMaxBackoff);
  next_start_ = Clock::now() + backoff_;
}

void RemoteProcessor::note_start_failure(const std::string& why) {
  if (health_->note_start_failure(why)) {
    spdlog::error(
        "pool '{}': its worker processes died at start for a minute ({}): no more are "
        "started; the pool's jobs wait (a reload or `barista resume {}` tries again)",
        spec_.pool, why, spec_.pool);
  }
}

void RemoteProcessor::crashed(const std::string& why, milliseconds grace) {
  throw plugin::WorkerCrash(end_worker(why, grace));
}

bool RemoteProcessor::ensure_started(const Context& ctx) {
  if (child_ && !child_->running()) {
    // It died between jobs: no job is charged.
    end_worker("exited between jobs", milliseconds(0));
  }
  if (child_) {
    return true;
  }
  // Given up (workers die at start): the job waits, cancellable, until the pool tries again.
  while (health_->given_up() || Clock::now() < next_start_) {
    if (ctx.cancelled()) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  try {
    child_ = std::make_unique<ChildProcess>(spec_.command);
  } catch (const SpawnError& e) {
    back_off();
    note_start_failure(e.what());
    throw plugin::WorkerCrash(fmt::format("cannot start a worker process: {}", e.what()));
  }
  if (started_before_) {
    health_->note_restart();
  }
  started_before_ = true;
  answered_ = false;
  return true;
}

std::optional<Outcome> RemoteProcessor::wind_down(const Job& job, const char* because) {
  child_->write_line(cancel_message(job.id), Clock::now() + milliseconds(100));
  std::string line;
  const auto term_at = Clock::now() + kTermAfter;
  const auto read = child_->read_line(line, term_at, kMaxLineBytes, nullptr, stderr_sink_);
  if (read == ChildProcess::Read::kLine) {
    std::string why;
    if (auto r = parse_result(line, why); r && r->id == job.id) {
      answered_ = true;
      return std::move(r->outcome);
    }
  }
  if (read == ChildProcess::Read::kClosed) {
    crashed("", kExitGrace);  // it ended on its own meanwhile: how it ended says more
  }
  child_->signal(SIGTERM);
  child_->stop(std::chrono::duration_cast<milliseconds>(kKillAfter));
  crashed(fmt::format("did not end job '{}' within {} s of its {}", job.id, kTermAfter.count(),
                      because),
          milliseconds(0));
}

Outcome RemoteProcessor::process(Context& ctx, const Job& job) {
  if (child_) {
    // Anything it wrote between jobs is a line for no job: a broken worker, started afresh.
    std::string stray;
    if (child_->read_line(stray, Clock::now(), kMaxLineBytes, nullptr, stderr_sink_) ==
        ChildProcess::Read::kLine) {
      end_worker(fmt::format("wrote a line while it had no job: {}",
                             std::string_view(stray).substr(0, 200)),
                 milliseconds(0));
    }
  }
  if (!ensure_started(ctx)) {
    return Outcome::fail("cancelled before a worker process could take it");
  }
  const auto deadline = ctx.deadline();
  std::optional<milliseconds> left;
  if (deadline != Clock::time_point::max()) {
    left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  }
  const auto message = job_message(job.id, job.payload, job.attempt, job.key, left);
  if (!child_->write_line(message, std::min(deadline, Clock::now() + kWriteTimeout))) {
    crashed(child_->running() ? "did not read its job" : "", kExitGrace);
  }
  std::string line;
  const auto stop = [&] { return ctx.cancelled(); };
  switch (child_->read_line(line, deadline, kMaxLineBytes, stop, stderr_sink_)) {
    case ChildProcess::Read::kLine:
      break;
    case ChildProcess::Read::kTimeout:
      if (auto outcome = wind_down(job, "deadline")) {
        return std::move(*outcome);
      }
      break;
    case ChildProcess::Read::kStopped:
      if (auto outcome = wind_down(job, "cancellation")) {
        return std::move(*outcome);
      }
      break;
    case ChildProcess::Read::kClosed:
      crashed("", kExitGrace);  // its stdout closed: it exits, or has
    case ChildProcess::Read::kTooLong:
      crashed(fmt::format("wrote a line longer than {} MiB", kMaxLineBytes >> 20), milliseconds(0));
  }
  std::string why;
  auto result = parse_result(line, why);
  if (!result) {
    crashed(fmt::format("wrote a line that is not a result ({}): {}", why,
                        std::string_view(line).substr(0, 200)),
            milliseconds(0));
  }
  if (result->id != job.id) {
    crashed(fmt::format("answered for id '{}', not for its job '{}'",
                        std::string_view(result->id).substr(0, 200), job.id),
            milliseconds(0));
  }
  answered_ = true;
  backoff_ = milliseconds(0);
  health_->note_answer();
  note_dropped_stderr();
  return std::move(result->outcome);
}

}  // namespace barista::isolation
