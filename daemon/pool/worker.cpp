// The worker side of a pool: running jobs, with retries, deadlines, rate and cancellation.
#include "daemon/pool/worker.hpp"

#include "daemon/common/duration_text.hpp"
#include "daemon/pool/tuning.hpp"
#include "daemon/pool/url_host.hpp"

#include <algorithm>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::pool {
namespace {

using batch::JobStatus;

using tuning::kIdleRecheck;

// Milliseconds from `start` to now; `now` becomes now (the next job's start: one clock read a job).
double ms_since(const Clock& clock, Clock::time_point start, Clock::time_point& now) {
  now = clock.now();
  return std::chrono::duration<double, std::milli>(now - start).count();
}

std::chrono::milliseconds backoff_for(const config::PoolConfig& c, int attempt) {
  auto delay = c.backoff;
  for (int i = 1; i < attempt && delay < c.max_backoff; ++i) {
    delay *= 2;
  }
  return std::min(delay, c.max_backoff);
}

}  // namespace

bool Pool::should_retire() {
  std::lock_guard lock(mutex_);
  if (retire_ == 0) {
    return false;
  }
  --retire_;
  return true;
}

void Pool::adopt_settings(Worker& self) {
  std::shared_ptr<const PoolSettings> fresh;
  plugin::ProcessorHandle processor;
  {
    std::lock_guard lock(mutex_);
    fresh = settings_;
    if (self.settings->processors_generation >= fresh->processors_generation) {
      // Only settings changed (workers, retries, timeout, ...): the processor stays, with what
      // it holds (an HTTP plugin's open connections, say).
      self.settings = std::move(fresh);
      return;
    }
    if (!fresh_processors_.empty()) {
      processor = std::move(fresh_processors_.back());
      fresh_processors_.pop_back();
    }
  }
  if (!processor) {
    try {
      processor = fresh->library->create(fresh->config.plugin_config);
    } catch (const std::exception& e) {
      spdlog::error("pool '{}': a worker keeps its old processor: {}", name_, e.what());
      return;
    }
  }
  self.processor = std::move(processor);  // the old one goes here, idle, on its own thread
  self.settings = std::move(fresh);
}

bool Pool::take(JobChunk*& chunk) {
  if (!queue_.try_pop(chunk)) {
    // The queue is empty: this worker reads (intake.cpp), unless another one does already.
    chunk = read_for_worker();
    if (chunk != nullptr) {
      return true;
    }
    // Woken by a chunk queued, or when it may read.
    if (!idle_.wait_until(
            [&] { return queue_.try_pop(chunk) || someone_may_read() || gate_.has_ready(); },
            kIdleRecheck) ||
        chunk == nullptr) {
      return false;
    }
  }
  if (queue_.size() <= refill_at_.load(std::memory_order_relaxed)) {
    space_.notify();  // a pusher, if it waits for room
  }
  return true;
}

void Pool::worker_loop(const std::shared_ptr<Worker>& self) {
  for (;;) {
    // An abandoned worker's rest first, even when stopping: run_chunk() then lets it go.
    JobChunk* chunk = std::exchange(self->orphan, nullptr);
    if (chunk == nullptr) {
      if (stopping_.load(std::memory_order_acquire) || should_retire()) {
        break;
      }
      if (paused_.load(std::memory_order_acquire)) {
        wait_while_paused();  // nothing new starts
        continue;
      }
      // Jobs set aside for their key first, once it may start: they are older than the queue's.
      chunk = gate_.take_ready();
      if (chunk == nullptr && (!take(chunk) || chunk == nullptr)) {
        continue;  // woken to look at stopping_ and retire_ again
      }
    }
    run_chunk(self, chunk);
    if (self->state.load(std::memory_order_acquire) == Worker::kAbandoned) {
      return;  // the monitor has replaced this worker: touch nothing of the pool any more
    }
  }
  std::lock_guard lock(mutex_);
  --workers_running_;
  // A retiring worker leaves the list; its thread is joined at stop().
  auto it = std::find(workers_.begin(), workers_.end(), self);
  if (it != workers_.end() && !stopping_.load()) {
    retired_threads_.push_back(std::move(self->thread));
    workers_.erase(it);
  }
  workers_cv_.notify_all();
}

void Pool::run_chunk(const std::shared_ptr<Worker>& self, JobChunk* chunk) {
  if (!chunk->set_aside) {
    head_queued_at_ns_.store(chunk->queued_at.time_since_epoch().count(),
                             std::memory_order_relaxed);
  }
  // The chunk's jobs leave the queue's count as a whole: one touch of a shared counter.
  queued_.fetch_sub(chunk->size() - chunk->next, std::memory_order_relaxed);
  const auto start = clock_.now();
  auto now = start;  // the clock as the last job ended
  std::size_t ran = 0;
  std::size_t alone_until = 0;  // after a frame's breakdown: a job at a time until there
  while (chunk->next < chunk->size()) {
    if (stopping_.load(std::memory_order_acquire)) {
      break;  // the rest has no result yet: it runs after the next start
    }
    if (paused_.load(std::memory_order_acquire)) {
      self->writer->flush(*chunk, /*patient=*/true);
      wait_while_paused();  // the rest of the chunk in hand waits too
      continue;
    }
    if (chunk->next >= alone_until) {
      if (auto* frames = frames_for(*self, *chunk)) {
        const auto before = chunk->next;
        const bool ran_here = run_frame(self, *chunk, *frames, now, alone_until);
        ran += chunk->next - before;
        if (!ran_here) {
          if (chunk->shared_owners.fetch_add(1, std::memory_order_acq_rel) == 1) {
            delete chunk;  // as below
          }
          return;
        }
        continue;
      }
    }
    const std::size_t i = chunk->next++;
    ++ran;
    // The gate is asked only while something limits, throttles or pauses keys, or for a job it
    // let start already (set aside, then taken back with its slot).
    Admission admission;
    admission.key = chunk->key(i);
    if (chunk->admitted) {
      admission.gated = true;
    } else if (!gate_.open()) {
      admission.key = key_of(self->settings->config, *chunk, i, admission.buffer);
      const auto admit_as = admit(*chunk, i, admission.key);
      if (admit_as == Admit::kSetAside) {
        continue;
      }
      if (admit_as == Admit::kStop) {
        if (stopping_.load(std::memory_order_acquire)) {
          break;  // no result: it runs after the next start
        }
        record_result(*self, *chunk, i, JobStatus::kCancelled, 0, ms_since(clock_, now, now),
                      "batch cancelled before the job started");
        continue;
      }
      admission.gated = true;
    }
    if (!finish_job(self, *chunk, i, now, admission)) {
      // Abandoned: the monitor has taken its results, and the monitor and this thread share the
      // chunk; the last one out deletes it.
      if (chunk->shared_owners.fetch_add(1, std::memory_order_acq_rel) == 1) {
        delete chunk;
      }
      return;
    }
  }
  self->writer->flush(*chunk, /*patient=*/true);
  if (ran > 0) {
    const auto per_job = std::chrono::duration_cast<std::chrono::nanoseconds>(now - start).count() /
                         static_cast<std::int64_t>(ran);
    const auto old = job_ns_.load(std::memory_order_relaxed);
    job_ns_.store(old == 0 ? per_job : (old * 7 + per_job) / 8, std::memory_order_relaxed);
  }
  recycle(chunk);
}

std::string_view Pool::key_of(const config::PoolConfig& cfg, const JobChunk& chunk,
                              std::size_t index, std::string& buffer) {
  const auto own = chunk.key(index);
  if (!own.empty() || cfg.key != config::KeySource::kUrlHost) {
    return own;
  }
  buffer = url_host(chunk.payload(index));
  return buffer;
}

Pool::Admit Pool::admit(JobChunk& chunk, std::size_t index, std::string_view key) {
  Clock::time_point until;
  if (gate_.try_start(key, until)) {
    return Admit::kStart;
  }
  if (set_aside(chunk, index, key, chunk.progress)) {
    return Admit::kSetAside;
  }
  // The gate holds all it may: this job waits for its key here (the one place a blocked key
  // holds a worker up, and what bounds the memory of the jobs looked ahead past it).
  return wait_for_key(key, [&] { return stopping_.load() || chunk.batch->cancelled(); })
             ? Admit::kStart
             : Admit::kStop;
}

bool Pool::wait_for_key(std::string_view key, const std::function<bool()>& stop) {
  Clock::time_point until;
  while (!gate_.try_start(key, until, /*behind_waiting=*/false)) {
    if (stop()) {
      return false;
    }
    gate_.wait_change(until, stop);
  }
  return true;
}

void Pool::wait_while_paused() {
  idle_.wait_until([&] { return !paused_.load() || stopping_.load(); }, kIdleRecheck);
}

bool Pool::set_aside(JobChunk& chunk, std::size_t index, std::string_view key,
                     const JobChunk::Progress& progress) {
  JobChunk* one = take_free_chunk();
  one->batch = chunk.batch;
  one->add(chunk.id(index), chunk.payload(index), chunk.line(index), chunk.tag(index), key);
  one->progress = progress;
  one->queued_at = chunk.queued_at;
  if (!gate_.park(key, one)) {
    recycle(one);
    return false;
  }
  queued_.fetch_add(1, std::memory_order_relaxed);  // waiting again, as a queued job does
  return true;
}

bool Pool::throttled(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
                     Admission& admission, JobChunk::Progress& progress, const Verdict& v,
                     Clock::time_point& now) {
  const config::PoolConfig& cfg = self->settings->config;
  if (!admission.gated) {
    // Started while the gate was open: its key was not looked at yet.
    admission.key = key_of(cfg, chunk, index, admission.buffer);
  }
  const int streak = gate_.note_throttle(admission.key);
  // No time given: the pool's backoff, doubling with each throttle of the key in a row.
  auto wait = v.throttle->count() > 0 ? *v.throttle : backoff_for(cfg, streak);
  if (wait > cfg.max_throttled) {
    spdlog::warn("pool '{}': job '{}' asked to wait {} ms: capped at max_throttled ({})", name_,
                 chunk.id(index), wait.count(), common::duration_text(cfg.max_throttled));
    wait = cfg.max_throttled;
  }
  ++progress.throttles;
  progress.throttled += wait;
  if (progress.throttled > cfg.max_throttled) {
    throttles_.fetch_add(1, std::memory_order_relaxed);
    record_result(*self, chunk, index, JobStatus::kFailed, progress.attempts,
                  ms_since(clock_, progress.first_start, now),
                  fmt::format("throttled for longer than max_throttled ({}): {}",
                              common::duration_text(cfg.max_throttled), v.text),
                  progress.throttles);
    return true;
  }
  const auto until = clock_.now() + wait;
  spdlog::debug("pool '{}': job '{}' throttled for {} ms: {}", name_, chunk.id(index), wait.count(),
                v.text);
  gate_.throttle(admission.key, until);
  throttles_.fetch_add(1, std::memory_order_relaxed);  // after: who sees it sees the key wait
  self->writer->flush(chunk, /*patient=*/true);        // the chunk's other results do not wait
  if (admission.gated) {
    gate_.done(admission.key);
    admission.gated = false;
  }
  if (set_aside(chunk, index, admission.key, progress)) {
    return true;
  }
  // The gate is full: wait here for the throttle to end, then take the key's slot again.
  const auto stop = [&] { return chunk.batch->cancelled() || discard_.load(); };
  clock_.sleep_until(until, stop);
  // On stop, run_job sees the cancellation (or the discard) and ends the job.
  admission.gated = !stop() && wait_for_key(admission.key, stop);
  return false;
}

void Pool::record_result(Worker& self, JobChunk& chunk, std::size_t index, JobStatus status,
                         int attempts, double ms, std::string_view text, int throttled) {
  self.writer->add(chunk, index, status, attempts, ms, text, throttled);
  if (batch::is_failure(status)) {
    hand_over_failure(self, chunk, /*patient=*/true);
  }
}

void Pool::hand_over_failure(Worker& self, const JobChunk& chunk, bool patient) {
  // At once: the sink records the batch's first failure (and, under cancel_all, a spool batch
  // cancels itself, a Redis one on every daemon). The error policy holds whatever the sink:
  // under cancel_all no further job of the batch starts, and running ones see ctx.cancelled().
  self.writer->flush(chunk, patient);
  if (self.settings->config.on_error == config::OnError::kCancelAll) {
    chunk.batch->cancel();
  }
}

Pool::Verdict Pool::judge(std::optional<Outcome>& outcome, std::string& thrown,
                          const config::PoolConfig& cfg, Clock::time_point deadline,
                          Clock::time_point ended, bool crashed) {
  Verdict v;
  if (crashed) {
    v.crashed = true;
    v.text = std::move(thrown);
  } else if (!outcome) {
    v.text = thrown.empty() ? std::string("the processor threw an exception") : std::move(thrown);
  } else if (cfg.timeout && ended > deadline) {
    v.status = JobStatus::kTimeout;
    v.text = fmt::format("deadline of {} ms exceeded", cfg.timeout->count());
  } else {
    switch (outcome->kind()) {
      case Outcome::Kind::kOk:
        v.status = JobStatus::kOk;
        break;
      case Outcome::Kind::kFatal:
        v.retryable = false;
        break;
      case Outcome::Kind::kFailed:
        break;
      case Outcome::Kind::kThrottled:
        v.throttle = outcome->retry_after();
        break;
    }
    v.text = outcome->take_text();
  }
  return v;
}

Pool::Ran Pool::attempt_once(Worker& self, JobChunk& chunk, std::size_t index, int attempt,
                             Clock::time_point first_start, Clock::time_point attempt_start,
                             std::string_view key, Verdict& verdict) {
  const config::PoolConfig& cfg = self.settings->config;
  const auto deadline = cfg.timeout ? attempt_start + *cfg.timeout : Clock::time_point::max();
  // A worker process's processor ends its overruns itself: the monitor waits longer for it.
  const bool hosted = self.settings->library->health() != nullptr;
  const auto abandon_at = deadline == Clock::time_point::max() || !hosted
                              ? deadline
                              : deadline + std::chrono::duration_cast<Clock::duration>(
                                               tuning::kHostedAbandonGrace - tuning::kAbandonGrace);
  // What the monitor reads if this attempt gets stuck, published before it starts.
  self.chunk = &chunk;
  self.index = index;
  self.attempt = attempt;
  self.first_start = first_start;
  self.deadline_ns.store(abandon_at.time_since_epoch().count(), std::memory_order_relaxed);
  self.state.store(Worker::kRunning, std::memory_order_release);

  Context ctx(&chunk.batch->cancel_token(), deadline);
  const Job job{chunk.id(index), chunk.payload(index), attempt, key};
  std::optional<Outcome> outcome;
  std::string thrown;
  bool crashed = false;
  // Marked while it runs (a crash journal): if the daemon dies now, the next start knows.
  self.writer->running(chunk, index);
  try {
    outcome.emplace(self.processor->process(ctx, job));
  } catch (const plugin::WorkerCrash& e) {
    crashed = true;
    thrown = e.what();
  } catch (const std::exception& e) {
    thrown = e.what();
  } catch (...) {
    thrown = "the processor threw an exception that is not a std::exception";
  }
  self.writer->ran();

  int expected = Worker::kRunning;
  if (!self.state.compare_exchange_strong(expected, Worker::kIdle, std::memory_order_acq_rel)) {
    return Ran::kAbandoned;  // while we were stuck: the monitor gave this job its result
  }
  if (discard_.load(std::memory_order_relaxed)) {
    return Ran::kDiscarded;
  }
  verdict = judge(outcome, thrown, cfg, deadline, clock_.now(), crashed);
  return Ran::kJudged;
}

bool Pool::charge_crash(Worker& self, JobChunk& chunk, std::size_t index,
                        JobChunk::Progress& progress, const Verdict& v, Clock::time_point now) {
  // Its worker process died with it (it ran alone there): a crash, not a failure; the job runs
  // again, in a new process, until it has crashed max_crashes times.
  if (stopping_.load(std::memory_order_relaxed)) {
    return true;  // stopped with the daemon: no result, the job runs after the next start
  }
  const int max_crashes = self.settings->config.max_crashes;
  ++progress.crashes;
  if (progress.crashes >= max_crashes) {
    record_result(self, chunk, index, JobStatus::kFailed, progress.attempts,
                  ms_since(clock_, progress.first_start, now),
                  fmt::format("crashed its worker {} times: {}", progress.crashes, v.text),
                  progress.throttles);
    return true;
  }
  spdlog::warn("pool '{}': job '{}' of batch '{}' crashed its worker ({} of max_crashes {}): {}",
               name_, chunk.id(index), chunk.batch->id(), progress.crashes, max_crashes, v.text);
  return false;
}

bool Pool::run_job(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
                   Clock::time_point& now, Admission& admission, Resume* resume) {
  batch::BatchCore& batch = *chunk.batch;
  // A job set aside by the gate goes on where it had got to; one of a frame, from what it did.
  JobChunk::Progress progress = resume != nullptr ? resume->progress
                                : chunk.set_aside ? chunk.progress
                                                  : JobChunk::Progress{};
  if (!progress.started) {
    progress.first_start = now;
    progress.started = true;
  }
  const auto first_start = progress.first_start;
  int& attempt = progress.attempts;
  const auto stop_waiting = [&] {
    return batch.cancelled() || discard_.load(std::memory_order_relaxed);
  };
  for (;;) {
    Verdict v;
    if (resume != nullptr && resume->verdict) {
      v = std::move(*std::exchange(resume->verdict, std::nullopt));  // its frame's attempt
    } else {
      if (batch.cancelled()) {
        record_result(*self, chunk, index, JobStatus::kCancelled, attempt,
                      ms_since(clock_, first_start, now),
                      attempt == 0 ? "batch cancelled before the job started" : "batch cancelled",
                      progress.throttles);
        return true;
      }
      if (discard_.load(std::memory_order_relaxed) ||
          (attempt == 0 && stopping_.load(std::memory_order_relaxed))) {
        return true;  // stopping: no result, the job runs after the next start
      }
      // A reload since the last attempt: this one uses the new settings and processor.
      if (self->settings->generation != generation_.load(std::memory_order_acquire)) {
        adopt_settings(*self);
      }
      const PoolSettings& settings = *self->settings;
      if (settings.rate && !settings.rate->acquire([&] {
            return stop_waiting() || (attempt == 0 && stopping_.load(std::memory_order_relaxed));
          })) {
        continue;
      }
      // A retry holds its key's slot; per_key.rate spaces its start as any other.
      const bool paced = attempt > 0 && admission.gated && settings.config.per_key.rate;
      if (paced && !clock_.sleep_until(gate_.pace(admission.key), stop_waiting)) {
        continue;
      }
      ++attempt;
      // The first attempt starts as the job does, unless the rate made it wait.
      const auto attempt_start =
          attempt == 1 && !settings.rate && !chunk.set_aside ? first_start : clock_.now();
      // Read by the monitor if this attempt gets stuck: it gives the key's slot back.
      self->holds_slot = admission.gated;
      if (admission.gated) {
        self->slot_key.assign(admission.key);
      }
      // The job's key as the processor sees it (Job::key): worked out here when the gate did not.
      std::string key_buffer;
      const auto key = admission.gated || !admission.key.empty()
                           ? admission.key
                           : key_of(settings.config, chunk, index, key_buffer);
      switch (attempt_once(*self, chunk, index, attempt, first_start, attempt_start, key, v)) {
        case Ran::kAbandoned:
          return false;
        case Ran::kDiscarded:
          return true;
        case Ran::kJudged:
          break;
      }
    }
    if (settle(self, chunk, index, now, admission, progress, v)) {
      return true;
    }
  }
}

bool Pool::settle(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
                  Clock::time_point& now, Admission& admission, JobChunk::Progress& progress,
                  const Verdict& v) {
  batch::BatchCore& batch = *chunk.batch;
  const int attempt = progress.attempts;
  if (v.status != JobStatus::kOk && batch.cancelled()) {
    record_result(*self, chunk, index, JobStatus::kCancelled, attempt,
                  ms_since(clock_, progress.first_start, now),
                  "batch cancelled while the job was running", progress.throttles);
    return true;
  }
  if (v.crashed) {
    return charge_crash(*self, chunk, index, progress, v, now);
  }
  if (v.throttle) {
    // False: waited here for the throttle to end: the next attempt.
    return throttled(self, chunk, index, admission, progress, v, now);
  }
  if (!gate_.open()) {
    gate_.clear_streak(admission.key);
  }
  const config::PoolConfig& cfg = self->settings->config;
  // Throttled attempts spend no retry.
  const int tries = attempt - progress.throttles - progress.crashes;
  if (v.status != JobStatus::kOk && v.retryable && tries <= cfg.retries) {
    const auto delay = backoff_for(cfg, tries);
    spdlog::debug("pool '{}': job '{}' of batch '{}' attempt {} {}: {}; retrying in {} ms", name_,
                  chunk.id(index), batch.id(), attempt, batch::to_string(v.status), v.text,
                  delay.count());
    self->writer->flush(chunk, /*patient=*/true);  // the chunk's other results do not wait
    clock_.sleep_until(clock_.now() + delay, [&] {
      return batch.cancelled() || discard_.load(std::memory_order_relaxed);
    });
    return false;
  }
  record_result(*self, chunk, index, v.status, attempt, ms_since(clock_, progress.first_start, now),
                v.text, progress.throttles);
  return true;
}

bool Pool::finish_job(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
                      Clock::time_point& now, Admission& admission, Resume* resume) {
  const bool ran_here = run_job(self, chunk, index, now, admission, resume);
  if (ran_here && admission.gated) {
    gate_.done(admission.key);
    if (gate_.has_ready()) {
      idle_.notify();  // a job of that key set aside may start: an idle worker takes it
    }
  }
  return ran_here;
}

plugin::FrameProcessor* Pool::frames_for(Worker& self, const JobChunk& chunk) {
  // One job at a time wherever something holds jobs back one by one, or the batch is ending.
  if (chunk.size() - chunk.next < 2 || chunk.set_aside || chunk.admitted || !gate_.open() ||
      chunk.batch->cancelled() || chunk.payload(chunk.next).size() > tuning::kMaxFrameBytes) {
    return nullptr;
  }
  if (self.settings->generation != generation_.load(std::memory_order_acquire)) {
    adopt_settings(self);
  }
  if (self.settings->rate || !self.processor) {
    return nullptr;
  }
  auto* frames = dynamic_cast<plugin::FrameProcessor*>(&*self.processor);
  return frames != nullptr && frames->takes_frames() ? frames : nullptr;
}

bool Pool::run_frame(const std::shared_ptr<Worker>& self, JobChunk& chunk,
                     plugin::FrameProcessor& frames, Clock::time_point& now,
                     std::size_t& alone_until) {
  const config::PoolConfig& cfg = self->settings->config;
  const std::size_t from = chunk.next;
  std::size_t n = 0;
  for (std::size_t bytes = 0; from + n < chunk.size() && n < tuning::kMaxFrameJobs; ++n) {
    bytes += chunk.id(from + n).size() + chunk.payload(from + n).size() + 64;
    if (bytes > tuning::kMaxFrameBytes && n > 0) {
      break;
    }
  }
  auto& jobs = self->frame_jobs;
  auto& keys = self->frame_keys;
  jobs.resize(n);
  keys.resize(n);  // before views into them are taken
  for (std::size_t k = 0; k < n; ++k) {
    const auto i = from + k;
    jobs[k] = {chunk.id(i), chunk.payload(i), key_of(cfg, chunk, i, keys[k])};
  }
  // Never abandoned by the monitor: the worker process's supervisor bounds the frame itself.
  self->chunk = &chunk;
  self->index = from;
  self->attempt = 1;
  self->first_start = now;
  self->holds_slot = false;
  self->deadline_ns.store(std::numeric_limits<std::int64_t>::max(), std::memory_order_relaxed);
  self->state.store(Worker::kRunning, std::memory_order_release);
  self->writer->running(chunk, from);
  std::string lost_why;
  frames.process_frame(jobs, {&chunk.batch->cancel_token(), cfg.timeout}, self->frame_results,
                       lost_why);
  self->writer->ran();
  self->state.store(Worker::kIdle, std::memory_order_release);
  if (discard_.load(std::memory_order_relaxed)) {
    chunk.next = from + n;
    return true;  // the pool's stop timed out: no results
  }
  const auto started = now;
  now = clock_.now();
  for (std::size_t k = 0; k < n; ++k) {
    chunk.next = from + k + 1;  // what an abandoned worker's replacement would take on
    if (!settle_frame_job(self, chunk, from + k, self->frame_results[k], started, now)) {
      return false;
    }
    if (self->frame_results[k].kind == plugin::FrameResult::Kind::kLost &&
        alone_until <= from + k) {
      alone_until = from + n;  // the rest of what was in flight runs a job at a time
      spdlog::warn(
          "pool '{}': {} jobs of batch '{}' were in flight in a worker process that "
          "broke down ({}): each runs again, alone",
          name_, n - k, chunk.batch->id(), lost_why);
    }
  }
  return true;
}

bool Pool::settle_frame_job(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
                            plugin::FrameResult& r, Clock::time_point started,
                            Clock::time_point& now) {
  using Kind = plugin::FrameResult::Kind;
  const config::PoolConfig& cfg = self->settings->config;
  Admission admission;
  Resume resume;
  resume.progress.first_start = started;
  resume.progress.started = true;
  if (r.kind == Kind::kSkipped) {
    if (chunk.batch->cancelled()) {
      record_result(*self, chunk, index, JobStatus::kCancelled, 0, 0.0,
                    "batch cancelled before the job started");
      return true;
    }
    return finish_job(self, chunk, index, now, admission, &resume);
  }
  resume.progress.attempts = 1;
  if (r.kind == Kind::kLost) {
    // Charged, and run again alone (where a crash may end it): never failed for a crash shared.
    resume.progress.crashes = 1;
    return finish_job(self, chunk, index, now, admission, &resume);
  }
  std::optional<Outcome> outcome(std::move(r.outcome));
  std::string thrown;
  // Its own start and end, as barista-worker measured them.
  const Clock::time_point attempt_start{};
  const auto deadline = cfg.timeout ? attempt_start + *cfg.timeout : Clock::time_point::max();
  auto v = judge(outcome, thrown, cfg, deadline, attempt_start + r.elapsed, false);
  if (v.status == JobStatus::kOk) {
    record_result(*self, chunk, index, JobStatus::kOk, 1,
                  std::chrono::duration<double, std::milli>(r.elapsed).count(), v.text);
    return true;
  }
  resume.verdict = std::move(v);
  return finish_job(self, chunk, index, now, admission, &resume);
}

}  // namespace barista::pool
