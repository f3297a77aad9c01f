#pragma once

#include "daemon/batch/job_counters.hpp"
#include "daemon/config/config.hpp"
#include "daemon/plugin/frames.hpp"
#include "daemon/plugin/plugin_library.hpp"
#include "daemon/pool/clock.hpp"
#include "daemon/pool/job_chunk.hpp"
#include "daemon/pool/key_gate.hpp"
#include "daemon/pool/rate_limiter.hpp"
#include "daemon/pool/sink.hpp"
#include "daemon/pool/sleepers.hpp"
#include "daemon/pool/source.hpp"
#include "daemon/pool/status.hpp"

#include <tbb/concurrent_queue.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace barista::pool {

/// What the pool's jobs run with. Replaced as a whole by a reload: attempts that start after it
/// use the new settings; running ones finish on the old.
struct PoolSettings {
  config::PoolConfig config;
  std::shared_ptr<const plugin::PluginLibrary> library;
  std::shared_ptr<RateLimiter> rate;
  std::uint64_t generation = 0;
  /// The generation whose reload last changed the plugin or its `config:`: a worker whose
  /// processor is that old or newer keeps it across later reloads (workers, retries, ...).
  std::uint64_t processors_generation = 0;
};

/// The engine of a named pool: a bounded queue of job chunks, drained by a fixed number of
/// workers, each with its own processor, with retries and backoff, the rate, deadlines and
/// abandonment, and the error policy. It knows no files and no Redis: jobs come from its Source
/// (read by the workers themselves, or handed over by the source's own thread) and results
/// leave through its Sink.
///
///   source -> (a worker that found the queue empty reads) -> tbb::concurrent_bounded_queue
///          -> workers -> processor -> result writer -> sink
///
/// The queue bounds memory: no more than `queue` jobs are read ahead of the workers (plus the
/// chunk each worker holds), so a batch of any size is never held in memory.
class Pool {
 public:
  /// Creates one processor per worker with the plugin's factory (which may throw: the pool is
  /// refused). `source` and `sink` may be one object (a backend implements both). `clock`: the
  /// time its jobs are judged by (clock.hpp), which outlives the pool. Threads start with
  /// start().
  Pool(config::PoolConfig config, std::shared_ptr<const plugin::PluginLibrary> library,
       std::shared_ptr<Source> source, std::shared_ptr<Sink> sink,
       const Clock& clock = Clock::steady());
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

  /// One processor per worker of `config`, for start-up, a reload, or a check. Throws.
  static std::vector<plugin::ProcessorHandle> make_processors(const config::PoolConfig& config,
                                                              const plugin::PluginLibrary& library);

  /// Starts the workers, the housekeeping and the source. With `hold`, nothing is read until
  /// release() (Pool::feed() may hand jobs over meanwhile: the suspects of a crash).
  void start(bool hold = false);
  /// Lets a held pool start reading.
  void release();

  /// Applies a reload: new settings for attempts that start from now on, processors made from
  /// them (one per worker of `config`), and the new number of workers (extra workers finish the
  /// jobs they hold, then leave; new ones start at once).
  void reconfigure(config::PoolConfig config, std::shared_ptr<const plugin::PluginLibrary> library,
                   std::vector<plugin::ProcessorHandle> processors);

  /// Graceful stop: no new jobs start; running ones get `timeout` to finish, then are
  /// interrupted and their results discarded (they run again after the next start).
  void stop(std::chrono::milliseconds timeout);

  [[nodiscard]] std::shared_ptr<const PoolSettings> settings() const;
  [[nodiscard]] std::uint64_t generation() const noexcept {
    return generation_.load(std::memory_order_acquire);
  }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] PoolStatus status() const;
  /// False when the pool's housekeeping thread has not ticked for `limit` (it is wedged): the
  /// systemd watchdog stops pinging. A pool that is stopping counts as alive.
  [[nodiscard]] bool alive(std::chrono::steady_clock::duration limit) const;
  /// Running totals for the metrics.
  [[nodiscard]] const batch::JobCounters& counters() const noexcept { return *counters_; }
  [[nodiscard]] const std::shared_ptr<batch::JobCounters>& shared_counters() const noexcept {
    return counters_;
  }
  [[nodiscard]] Source& source() const noexcept { return *source_; }

  // What the daemon asks of the pool's batches: handed to its source.
  std::optional<std::string> claim(std::string_view name) { return source_->claim(name); }
  void recover() { source_->recover(); }
  std::size_t run_suspects() { return source_->run_suspects(); }
  [[nodiscard]] std::vector<BatchStatus> batches() const { return source_->batches(); }

  /// `barista pause` / `resume`: with `pool`, no new attempt of the pool starts; otherwise none
  /// of the `keys`. Running attempts finish. Replaces what was paused before.
  void set_paused(bool pool, std::set<std::string> keys);
  [[nodiscard]] bool paused() const noexcept { return paused_.load(std::memory_order_acquire); }
  [[nodiscard]] std::set<std::string> paused_keys() const { return gate_.paused_keys(); }
  /// Counts `per_key` slots and starts, and tells throttles, across the daemons that share the
  /// pool (set by its source when it is attached, before any worker runs).
  void share_keys(std::shared_ptr<SharedKeys> shared) { gate_.share(std::move(shared)); }
  /// A throttle heard from another daemon sharing the pool: nothing of `key` (of the pool, for
  /// "") starts for `d`.
  void throttled_elsewhere(std::string_view key, Clock::duration d) {
    gate_.throttle(key, clock_.now() + d, /*tell_others=*/false);
  }
  /// The keys holding jobs up now, most blocked first (at most `max`), for `status POOL`.
  [[nodiscard]] std::vector<KeyRow> blocked_keys(std::size_t max) const {
    return gate_.blocked(max);
  }
  /// The keys the pool keeps state for now (limits, throttles, jobs set aside).
  [[nodiscard]] std::size_t tracked_keys() const { return gate_.tracked(); }
  /// How many jobs may be set aside past keys that may not start: max(queue, kMinLookahead).
  static constexpr std::size_t kMinLookahead = 1000;

  // For the pool's source.

  /// Queues a chunk of jobs, sleeping while the queue is full (the pool's backpressure). Throws
  /// tbb::user_abort when the pool stops (the chunk is the caller's again).
  void feed(JobChunk* chunk);
  /// A pull source has input again: an idle worker reads it.
  void input_ready() { idle_.notify(); }
  /// Wakes every idle worker (to read again, say).
  void wake_all() { idle_.wake_all(); }
  /// Jobs queued and not yet taken by a worker (those set aside for their key included).
  [[nodiscard]] std::uint64_t queued() const noexcept {
    return queued_.load(std::memory_order_relaxed);
  }
  /// Of them, those in the queue: what the pool's backpressure counts. Jobs set aside for their
  /// key have a bound of their own (the gate's lookahead), so that a blocked key never stops the
  /// reading of other keys' jobs.
  [[nodiscard]] std::uint64_t queued_to_run() const noexcept {
    const auto all = queued();
    const auto aside = gate_.parked();
    return all > aside ? all - aside : 0;
  }
  /// How many jobs a chunk should hold now: about kChunkTargetNs of work.
  [[nodiscard]] std::size_t chunk_size() const;
  /// For a push source, before it reads: applies a reload's `queue` and `workers` to the queue.
  void sync_queue_settings();
  /// Nothing queued and no job running.
  [[nodiscard]] bool idle() const;
  /// True once stop() has begun: no new job starts.
  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
  /// Waits until the pool is released (start() without hold, or release()) or stopping.
  void wait_released();
  /// A chunk to fill (recycled ones first), and one given back (emptied).
  JobChunk* take_free_chunk();
  void recycle(JobChunk* chunk);

 private:
  struct Worker;
  friend struct Worker;

  // reading a pull source (reader.cpp)
  /// Called by a worker that found the queue empty: reads a chunk for it and refills the queue.
  /// Null when there is nothing to read, or another worker is reading.
  JobChunk* read_for_worker();
  /// There is input to read, and nothing forbids reading it now.
  [[nodiscard]] bool may_read() const noexcept;
  /// may_read(), and no worker is reading: an idle worker should read.
  [[nodiscard]] bool someone_may_read() const noexcept;
  /// Jobs of a chunk that leaves without running (a stop): they run after the next start.
  void recycle_unread(JobChunk* chunk);
  void push(JobChunk* chunk);
  void apply_queue_settings(const config::PoolConfig& config);

  // workers (worker.cpp)
  void worker_loop(const std::shared_ptr<Worker>& self);
  void run_chunk(const std::shared_ptr<Worker>& self, JobChunk* chunk);
  /// Takes a chunk from the queue, sleeping while it is empty; false when woken without one
  /// (to look at stopping_ and retire_ again).
  bool take(JobChunk*& chunk);
  /// Records a job's result through the worker's writer; a failure at once (under cancel_all it
  /// cancels the batch).
  void record_result(Worker& self, JobChunk& chunk, std::size_t index, batch::JobStatus status,
                     int attempts, double ms, std::string_view text, int throttled = 0);
  /// Hands a failure just gathered (with the rest of the chunk's results) to the sink at once,
  /// and applies the error policy: under cancel_all the batch is cancelled.
  void hand_over_failure(Worker& self, const JobChunk& chunk, bool patient);
  [[nodiscard]] int busy_locked() const;
  /// What an attempt came to.
  struct Verdict {
    batch::JobStatus status = batch::JobStatus::kFailed;
    std::string text;
    bool retryable = true;
    std::optional<std::chrono::milliseconds> throttle;  // Outcome::throttle(): wait this long
    bool crashed = false;  // its worker process crashed (plugin::WorkerCrash): charged a crash
  };
  /// A job's key, and whether it holds its key's slot in the gate (to give back when it ends).
  struct Admission {
    Admission() = default;
    Admission(const Admission&) = delete;  // `key` may point into `buffer`
    Admission& operator=(const Admission&) = delete;
    std::string_view key;
    bool gated = false;
    std::string buffer;  // the key, when worked out from the payload (key: url_host)
  };
  enum class Admit { kStart, kSetAside, kStop };
  /// The key of job `index`: its own, else its payload's URL host under `key: url_host`.
  static std::string_view key_of(const config::PoolConfig& cfg, const JobChunk& chunk,
                                 std::size_t index, std::string& buffer);
  /// Asks the gate whether job `index` may start: kStart (its slot taken), kSetAside (it waits
  /// in the gate, in a chunk of its own, and the worker goes on), kStop (the pool stops, or the
  /// batch was cancelled, while it waited for its key: the lookahead was full).
  Admit admit(JobChunk& chunk, std::size_t index, std::string_view key);
  /// Waits in place until `key` may start, ahead of its jobs set aside, and takes its slot;
  /// false (no slot) once `stop()`.
  bool wait_for_key(std::string_view key, const std::function<bool()>& stop);
  /// While the pool is paused (`barista pause POOL`), waits; set_paused() wakes it.
  void wait_while_paused();
  /// Moves job `index` into a one-job chunk the gate keeps until its key may start, with
  /// `progress`. False when the gate holds its lookahead already.
  bool set_aside(JobChunk& chunk, std::size_t index, std::string_view key,
                 const JobChunk::Progress& progress);
  /// A throttled attempt (`v.throttle`): the key waits, the job is set aside (or waits here
  /// when the gate is full). True when the job is done here (set aside, or failed past
  /// max_throttled); false to run its next attempt now.
  bool throttled(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
                 Admission& admission, JobChunk::Progress& progress, const Verdict& v,
                 Clock::time_point& now);
  enum class Ran { kJudged, kDiscarded, kAbandoned };
  /// `ended`: when the attempt returned.
  static Verdict judge(std::optional<Outcome>& outcome, std::string& thrown,
                       const config::PoolConfig& cfg, Clock::time_point deadline,
                       Clock::time_point ended, bool crashed);
  /// Runs one attempt of job `index` with the worker's processor and judges it (`verdict`);
  /// kDiscarded when the pool's stop timed out meanwhile, kAbandoned when the monitor gave up
  /// on the worker.
  Ran attempt_once(Worker& self, JobChunk& chunk, std::size_t index, int attempt,
                   Clock::time_point first_start, Clock::time_point attempt_start,
                   std::string_view key, Verdict& verdict);
  /// Charges job `index` the crash of its worker process (`v.crashed`): true when that ended
  /// the job (max_crashes reached: its result recorded; or the pool stops: none), false when
  /// it is to run again.
  bool charge_crash(Worker& self, JobChunk& chunk, std::size_t index, JobChunk::Progress& progress,
                    const Verdict& v, Clock::time_point now);
  /// Runs a job to its result: attempts, retries with backoff, the rate, cancellation. False
  /// when the worker was abandoned. `now`: the clock when the job starts; on return, when it
  /// ended.
  /// Where a job of a frame goes on from: what it did there, and its attempt's verdict (none:
  /// it runs its next attempt).
  struct Resume {
    JobChunk::Progress progress;
    std::optional<Verdict> verdict;
  };
  bool run_job(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
               Clock::time_point& now, Admission& admission, Resume* resume = nullptr);
  /// What follows an attempt's verdict: true when the job is done (its result recorded, set
  /// aside, or none as the pool stops), false to run its next attempt (after the backoff).
  bool settle(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
              Clock::time_point& now, Admission& admission, JobChunk::Progress& progress,
              const Verdict& v);
  /// run_job(), then the key's slot given back; false when the worker was abandoned.
  bool finish_job(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
                  Clock::time_point& now, Admission& admission, Resume* resume = nullptr);
  /// The worker's processor as a FrameProcessor when the rest of `chunk` may go to it as one
  /// frame: it takes frames, no key limit, rate or throttle holds jobs back one by one, the
  /// batch goes on. Else null.
  plugin::FrameProcessor* frames_for(Worker& self, const JobChunk& chunk);
  /// Runs the rest of `chunk` (up to kMaxFrameJobs) as one frame, then settles each job: an ok
  /// one is recorded, the others go on as run_job() would from their attempt; jobs lost in a
  /// breakdown run again alone (up to `alone_until`). False when the worker was abandoned.
  bool run_frame(const std::shared_ptr<Worker>& self, JobChunk& chunk,
                 plugin::FrameProcessor& frames, Clock::time_point& now, std::size_t& alone_until);
  bool settle_frame_job(const std::shared_ptr<Worker>& self, JobChunk& chunk, std::size_t index,
                        plugin::FrameResult& r, Clock::time_point started, Clock::time_point& now);
  void adopt_settings(Worker& self);
  bool should_retire();
  std::shared_ptr<Worker> spawn_worker_locked(plugin::ProcessorHandle processor, JobChunk* orphan);

  // housekeeping (monitor.cpp)
  void monitor_loop();
  void check_stuck_workers();
  /// Gives an abandoned worker's job its timeout and the rest of its chunk a new worker.
  void replace_abandoned(const std::shared_ptr<Worker>& worker);

  const std::string name_;
  const Clock& clock_;
  std::shared_ptr<Source> source_;
  std::shared_ptr<Sink> sink_;
  std::shared_ptr<batch::JobCounters> counters_ = std::make_shared<batch::JobCounters>();
  std::atomic<std::uint64_t> generation_{1};

  // The reader's (reader_mutex_, or a push source's one thread: sync_queue_settings()).
  std::size_t max_chunk_ = 1;
  std::uint64_t queue_jobs_ = 1;        // `queue`: jobs read ahead at most
  std::ptrdiff_t queue_chunks_ = 1;     // the queue's capacity in chunks
  std::uint64_t queue_generation_ = 0;  // of the settings the three above were made from
  std::mutex reader_mutex_;    // held by the worker that reads a pull source; guards spare_
  JobChunk* spare_ = nullptr;  // read once the queue was full: the next reader's own
  std::atomic<bool> has_spare_{false};  // spare_ is set
  std::atomic<bool> reading_{false};    // a worker holds reader_mutex_

  KeyGate gate_{clock_};  // per-key limits, throttles, paused keys; the jobs set aside there
  std::atomic<bool> paused_{false};  // `barista pause POOL`: no new attempt starts
  std::atomic<std::uint64_t> throttles_{0};
  std::atomic<std::int64_t> head_queued_at_ns_{0};  // queued_at of the chunk taken last

  tbb::concurrent_bounded_queue<JobChunk*> queue_;  // only its non-blocking calls are used
  Sleepers idle_;                                   // workers waiting for a chunk
  Sleepers space_;  // a feeder (a push source, the suspects) waiting for room in the queue
  /// A feeder waiting for room is woken when the queue is down to this many chunks (half its
  /// capacity), so that it refills it in one go instead of waking for each chunk taken.
  std::atomic<std::ptrdiff_t> refill_at_{0};
  tbb::concurrent_queue<JobChunk*> free_chunks_;
  std::atomic<std::uint64_t> queued_{0};
  std::atomic<std::int64_t> job_ns_{0};  // moving average of a job's run time

  mutable std::mutex mutex_;  // guards everything below
  std::shared_ptr<const PoolSettings> settings_;
  std::vector<plugin::ProcessorHandle> fresh_processors_;  // made by the last reload, not yet used
  std::condition_variable released_cv_;
  std::atomic<bool> held_{false};  // nothing is read until release()
  bool released_ = false;
  std::vector<std::shared_ptr<Worker>> workers_;
  std::vector<std::thread> retired_threads_;
  std::condition_variable workers_cv_;
  int workers_running_ = 0;
  int retire_ = 0;  // workers asked to leave

  std::atomic<bool> started_{false};
  std::atomic<std::int64_t> last_tick_ns_{0};  // steady clock, by the housekeeping thread
  std::atomic<bool> stopping_{false};          // no new jobs start
  std::atomic<bool> discard_{false};           // graceful stop timed out: results are discarded
  std::atomic<std::uint64_t> abandoned_{0};

  std::thread monitor_;
  std::mutex monitor_mutex_;
  std::condition_variable monitor_cv_;
};

}  // namespace barista::pool
