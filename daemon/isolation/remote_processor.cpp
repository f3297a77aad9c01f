#include "daemon/isolation/remote_processor.hpp"

#include "daemon/isolation/exec_protocol.hpp"
#include "daemon/isolation/frames.hpp"

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
// A frame's results may come this much later than a job's timeout before it counts as overrun:
// barista-worker sends what it has at least every millisecond while jobs end.
constexpr auto kFrameSlack = milliseconds(50);
constexpr std::size_t kMaxHeaderBytes = 256;

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

void RemoteProcessor::drop_stray_output() {
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
}

void RemoteProcessor::note_answer() {
  answered_ = true;
  backoff_ = milliseconds(0);
  health_->note_answer();
  note_dropped_stderr();
}

Outcome RemoteProcessor::process(Context& ctx, const Job& job) {
  drop_stray_output();
  if (!ensure_started(ctx)) {
    return Outcome::fail("cancelled before a worker process could take it");
  }
  const auto deadline = ctx.deadline();
  std::optional<milliseconds> left;
  if (deadline != Clock::time_point::max()) {
    // Rounded up: the worker's deadline is never before ours, so that a job it cuts short at
    // its deadline ends past ours and is a timeout, as in the daemon's threads.
    left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
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
  note_answer();
  return std::move(result->outcome);
}

std::string RemoteProcessor::read_results(std::size_t total, std::vector<plugin::FrameResult>& out,
                                          Clock::time_point deadline, ChildProcess::Read& read,
                                          const std::function<bool()>& stop) {
  std::string line;
  read = child_->read_line(line, deadline, kMaxHeaderBytes, stop, stderr_sink_);
  switch (read) {
    case ChildProcess::Read::kLine:
      break;
    case ChildProcess::Read::kTimeout:
    case ChildProcess::Read::kStopped:
      return {};
    case ChildProcess::Read::kClosed:
      return end_worker("", kExitGrace);
    case ChildProcess::Read::kTooLong:
      return end_worker("wrote a line that is not a frame's results", milliseconds(0));
  }
  const auto header = parse_frame_header(line, "results");
  if (!header || out.size() + header->count > total) {
    return end_worker(fmt::format("wrote a line that is not a frame's results: {}",
                                  std::string_view(line).substr(0, 200)),
                      milliseconds(0));
  }
  std::string body;
  read = child_->read_bytes(body, header->bytes, Clock::now() + kWriteTimeout, stderr_sink_);
  if (read == ChildProcess::Read::kClosed) {
    return end_worker("", kExitGrace);
  }
  if (read != ChildProcess::Read::kLine) {
    return end_worker("did not write the rest of its results", milliseconds(0));
  }
  const auto before = out.size();
  std::string why;
  if (!decode_results(body, header->count, out, why)) {
    out.resize(before);
    return end_worker(fmt::format("wrote results that do not decode: {}", why), milliseconds(0));
  }
  note_answer();
  return {};
}

void RemoteProcessor::process_frame(std::span<const plugin::FrameJob> jobs,
                                    const plugin::FrameRun& run,
                                    std::vector<plugin::FrameResult>& out, std::string& lost_why) {
  out.clear();
  out.reserve(jobs.size());
  const auto lose_rest = [&](std::string why) {
    lost_why = std::move(why);
    out.resize(jobs.size());  // the rest: kLost
  };
  drop_stray_output();
  try {
    if (!ensure_started(Context(run.cancel, Clock::time_point::max()))) {
      plugin::FrameResult skipped;
      skipped.kind = plugin::FrameResult::Kind::kSkipped;
      out.assign(jobs.size(), skipped);
      return;
    }
  } catch (const plugin::WorkerCrash& e) {
    lose_rest(e.what());
    return;
  }
  if (!child_->write_all(frame_message(jobs, run.timeout), Clock::now() + kWriteTimeout)) {
    lose_rest(end_worker(child_->running() ? "did not read its frame" : "", kExitGrace));
    return;
  }
  bool cancel_sent = false;                  // the rest of the frame is cancelled
  std::optional<Clock::time_point> term_at;  // after a cancellation: SIGTERM then
  auto progress = Clock::now();
  const auto stop = [&] {
    return !cancel_sent && run.cancel != nullptr && run.cancel->load(std::memory_order_relaxed);
  };
  while (out.size() < jobs.size()) {
    const auto deadline = term_at       ? *term_at
                          : run.timeout ? progress + *run.timeout + kFrameSlack
                                        : Clock::time_point::max();
    const auto before = out.size();
    auto read = ChildProcess::Read::kLine;
    if (auto why = read_results(jobs.size(), out, deadline, read, stop); !why.empty()) {
      lose_rest(std::move(why));
      return;
    }
    if (out.size() > before) {
      progress = Clock::now();
      if (!cancel_sent) {
        term_at.reset();  // the job that overran has ended
      }
      continue;
    }
    if (read == ChildProcess::Read::kStopped || !term_at) {
      // The batch was cancelled (the rest of the frame with it), or the job running overran.
      cancel_sent = cancel_sent || read == ChildProcess::Read::kStopped;
      child_->write_line(cancel_frame_message(cancel_sent), Clock::now() + milliseconds(100));
      term_at = Clock::now() + kTermAfter;
      continue;
    }
    child_->signal(SIGTERM);
    child_->stop(std::chrono::duration_cast<milliseconds>(kKillAfter));
    lose_rest(end_worker(fmt::format("did not end a job within {} s of its {}", kTermAfter.count(),
                                     cancel_sent ? "cancellation" : "deadline"),
                         milliseconds(0)));
    return;
  }
}

}  // namespace barista::isolation
