#include "daemon/pool/pool.hpp"

#include "daemon/batch/line_reader.hpp"
#include "daemon/common/fs.hpp"
#include "daemon/config/config_diff.hpp"
#include "daemon/pool/worker.hpp"

#include <fcntl.h>
#include <stdio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::pool {
namespace {

using Clock = std::chrono::steady_clock;

// A chunk is sized so that running it takes about this long: large enough that the queue is
// touched rarely when jobs are tiny, small enough that slow jobs still spread over all workers.
constexpr std::int64_t kChunkTargetNs = 1'000'000;
// And never more jobs than this, nor more than queue / (2 × workers) (apply_queue_settings). With
// tiny jobs and four workers on two cores, 64 made a 1,000,000-job batch cost 60% more sleeps
// and wake-ups than 256 (9,900 against 6,200 voluntary context switches).
constexpr std::size_t kMaxChunkJobs = 256;
constexpr std::size_t kMaxChunkBytes = 256 * 1024;
// Batches read at once, round-robin, by a pool's feeder; the others wait their turn.
constexpr std::size_t kMaxOpenBatches = 4;
constexpr auto kMonitorTick = std::chrono::milliseconds(50);
constexpr auto kAbandonGrace = std::chrono::seconds(1);
// Batches claimed ahead of the workers at most; more wait in the inbox. Each claimed batch
// holds a descriptor and some memory: a flood of files must not take them all.
constexpr std::size_t kMaxClaimed = 1024;
// While results cannot be written, how often writing and claiming are tried again.
constexpr auto kStorageRetry = std::chrono::seconds(1);

}  // namespace

struct Pool::OpenBatch {
  std::shared_ptr<batch::Batch> batch;
  std::unique_ptr<batch::LineReader> reader;
  std::unique_ptr<batch::JobParser> parser;
  std::unordered_map<std::string, std::uint32_t> recorded;
  batch::CrashRecords crashes;
};

Pool::Pool(config::PoolConfig config, std::shared_ptr<const plugin::PluginLibrary> library,
           const std::filesystem::path& spool, std::shared_ptr<batch::RunningJobs> running)
    : name_(config.name),
      spool_(spool, config.name),
      running_(std::move(running)),
      redis_(config.redis.has_value()) {
  fresh_processors_ = make_processors(config, *library);
  auto settings = std::make_shared<PoolSettings>();
  if (config.rate) {
    settings->rate = std::make_shared<RateLimiter>(config.rate->count, config.rate->per);
  }
  settings->generation = generation_.load();
  settings->library = std::move(library);
  settings->config = std::move(config);
  apply_queue_settings(settings->config);
  settings_ = std::move(settings);
  spool_.ensure();
}

Pool::~Pool() {
  if (!stopping_) {
    stop(std::chrono::milliseconds(0));
  }
  JobChunk* chunk = nullptr;
  while (free_chunks_.try_pop(chunk)) {
    delete chunk;
  }
}

std::vector<plugin::ProcessorHandle> Pool::make_processors(const config::PoolConfig& config,
                                                           const plugin::PluginLibrary& library) {
  std::vector<plugin::ProcessorHandle> out;
  for (int i = 0; i < config.workers; ++i) {
    out.push_back(library.create(config.plugin_config));
  }
  return out;
}

void Pool::apply_queue_settings(const config::PoolConfig& config) {
  const auto workers = static_cast<std::size_t>(config.workers);
  max_chunk_ = std::clamp<std::size_t>(config.queue / (2 * workers), 1, kMaxChunkJobs);
  // Capacity in chunks, so that about `queue` jobs wait at most (and every worker has one).
  // Called by the feeder only (or before it starts): only push() reads the capacity.
  const auto capacity = std::max(workers, (config.queue + max_chunk_ - 1) / max_chunk_);
  queue_.set_capacity(static_cast<std::ptrdiff_t>(capacity));
  refill_at_.store(static_cast<std::ptrdiff_t>(capacity / 2), std::memory_order_relaxed);
}

std::shared_ptr<Pool::Worker> Pool::make_worker_locked(plugin::ProcessorHandle processor,
                                                       JobChunk* orphan) {
  auto worker = std::make_shared<Worker>(std::move(processor), running_);
  worker->settings = settings_;
  worker->orphan = orphan;
  ++workers_running_;
  worker->thread = std::thread([this, worker] { worker_loop(worker); });
  return worker;
}

void Pool::spawn_worker_locked(plugin::ProcessorHandle processor, JobChunk* orphan) {
  workers_.push_back(make_worker_locked(std::move(processor), orphan));
}

void Pool::release() {
  {
    std::lock_guard lock(mutex_);
    held_ = false;
    released_ = true;  // a start() that comes after does not hold it again
  }
  feeder_cv_.notify_all();
}

void Pool::start(bool hold) {
  std::lock_guard lock(mutex_);
  while (!fresh_processors_.empty()) {
    auto processor = std::move(fresh_processors_.back());
    fresh_processors_.pop_back();
    spawn_worker_locked(std::move(processor), nullptr);
  }
  started_ = true;
  held_ = hold && !released_;
  if (redis_) {
    feeder_ = std::thread([this] { redis_feeder_loop(); });
    listener_ = std::thread([this] { cancel_listener_loop(); });
  } else {
    feeder_ = std::thread([this] { feeder_loop(); });
    claimer_ = std::thread([this] { claimer_loop(); });
  }
  monitor_ = std::thread([this] { monitor_loop(); });
  const auto& cfg = settings_->config;
  const auto& lib = *settings_->library;
  spdlog::info("pool '{}' up: plugin '{}' {} ({}), {} workers, queue {}, on_error {}{}", name_,
               lib.name(), lib.version(), lib.path().string(), cfg.workers, cfg.queue,
               cfg.on_error == config::OnError::kCancelAll ? "cancel_all" : "continue",
               cfg.redis ? fmt::format(", redis {}:{} stream '{}' group '{}' consumer '{}'",
                                       cfg.redis->host, cfg.redis->port, cfg.redis->stream,
                                       cfg.redis->group, cfg.redis->consumer)
                         : std::string());
}

void Pool::reconfigure(config::PoolConfig config,
                       std::shared_ptr<const plugin::PluginLibrary> library,
                       std::vector<plugin::ProcessorHandle> processors) {
  auto settings = std::make_shared<PoolSettings>();
  settings->library = std::move(library);
  settings->config = std::move(config);
  std::lock_guard lock(mutex_);
  const auto& old = settings_->config;
  if (settings->config.rate) {
    // The same rate keeps its limiter, so that a reload does not reset its pacing.
    settings->rate = old.rate == settings->config.rate
                         ? settings_->rate
                         : std::make_shared<RateLimiter>(settings->config.rate->count,
                                                         settings->config.rate->per);
  }
  settings->generation = generation_.load() + 1;
  const bool new_processors =
      settings_->library != settings->library ||
      !config::same_values(old.plugin_config.root(), settings->config.plugin_config.root());
  settings->processors_generation =
      new_processors ? settings->generation : settings_->processors_generation;
  fresh_processors_ =
      new_processors ? std::move(processors) : std::vector<plugin::ProcessorHandle>{};
  settings_ = settings;
  generation_.store(settings->generation, std::memory_order_release);

  // Resize: new workers start now; extra ones leave after the chunk they hold.
  const int target = settings->config.workers;
  const int live = workers_running_ - retire_;
  if (started_ && target > live) {
    for (int i = live; i < target; ++i) {
      plugin::ProcessorHandle processor;
      if (!fresh_processors_.empty()) {
        processor = std::move(fresh_processors_.back());
        fresh_processors_.pop_back();
      } else {
        processor = settings->library->create(settings->config.plugin_config);
      }
      spawn_worker_locked(std::move(processor), nullptr);
    }
  } else if (started_ && target < live) {
    retire_ += live - target;
    idle_.wake_all();  // idle workers see that they are to leave
  }
  feeder_cv_.notify_all();
}

void Pool::add_batch(std::shared_ptr<batch::Batch> batch,
                     std::unordered_map<std::string, std::uint32_t> recorded,
                     batch::CrashRecords crashes) {
  {
    std::lock_guard lock(mutex_);
    active_.push_back(batch);
    waiting_.push_back({std::move(batch), std::move(recorded), std::move(crashes)});
  }
  feeder_cv_.notify_one();
}

std::optional<std::string> Pool::claim(std::string_view name) {
  std::lock_guard lock(claim_mutex_);
  return claim_locked(spool_.inbox() / std::string(name), name);
}

std::optional<std::string> Pool::claim_locked(const std::filesystem::path& source,
                                              std::string_view name, bool submitted) {
  if (redis_) {
    if (name.starts_with('.')) {
      return std::nullopt;  // ignored in every inbox (a submission's temp file among them)
    }
    // A Redis pool's jobs live in its stream: `barista submit` puts them there.
    spdlog::warn(
        "pool '{}': inbox/{} is not read: the pool takes its jobs from redis (use "
        "barista submit)",
        name_, name);
    return std::nullopt;
  }
  if (storage_failing_.load()) {
    return std::nullopt;  // it waits in the inbox: claimed when results can be written again
  }
  if (!submitted) {
    std::lock_guard lock(mutex_);
    if (active_.size() >= kMaxClaimed) {
      // Enough batches are claimed ahead of the workers: this one waits in the inbox, durable
      // as it is, and the claimer thread takes it when some of them have ended.
      inbox_backlog_ = true;
      return std::nullopt;
    }
  }
  const bool cancel_all = settings()->config.on_error == config::OnError::kCancelAll;
  std::optional<batch::Batch::Info> info;
  try {
    info = submitted ? spool_.claim(source, name, cancel_all) : spool_.claim(name, cancel_all);
  } catch (const std::system_error& e) {
    if (e.code() == std::errc::no_space_on_device) {
      note_write_failure(e.code().message());
    }
    throw;
  }
  if (!info) {
    return std::nullopt;
  }
  info->counters = counters_;
  std::string id = info->id;
  std::shared_ptr<batch::Batch> b;
  try {
    b = std::make_shared<batch::Batch>(*info);
  } catch (const std::system_error& e) {
    spool_.unclaim(*info, source);
    if (e.code() == std::errc::no_space_on_device) {
      note_write_failure(e.code().message());
    }
    throw;
  }
  if (!submitted) {
    spdlog::info("pool '{}': batch '{}' claimed from inbox/{}", name_, id, name);
  }
  add_batch(std::move(b));
  return id;
}

std::string Pool::accept_submission(const std::filesystem::path& tmp, std::string_view name) {
  std::lock_guard lock(claim_mutex_);
  if (storage_failing_.load()) {
    throw std::runtime_error(fmt::format(
        "pool '{}' cannot write results now (is the disk full?): try again later", name_));
  }
  // Straight from the temp file to active/ID/: the claim's two folder syncs make the new name
  // durable, so the batch skips the inbox (and the inbox's sync) on its way.
  auto id = claim_locked(tmp, name, /*submitted=*/true);
  if (!id) {
    throw std::runtime_error("the submitted batch vanished before it was claimed");
  }
  return *id;
}

std::shared_ptr<const PoolSettings> Pool::settings() const {
  std::lock_guard lock(mutex_);
  return settings_;
}

void Pool::recover() {
  if (const auto n = spool_.remove_abandoned_submissions(); n > 0) {
    spdlog::warn(
        "pool '{}': removed {} partly uploaded submission(s) of a daemon that stopped "
        "while receiving them (their clients were never given a batch id)",
        name_, n);
  }
  if (redis_) {
    return;  // its unfinished jobs are pending in Redis
  }
  const bool cancel_all = settings()->config.on_error == config::OnError::kCancelAll;
  std::lock_guard lock(claim_mutex_);
  // A batch claimed or submitted since the pool started is running already: not resumed twice,
  // and its live results file is not touched.
  for (auto& r : spool_.recover(cancel_all,
                                [&](const std::string& id) { return find_batch(id) != nullptr; })) {
    spdlog::info("pool '{}': resuming batch '{}' ({} results already recorded)", name_, r.info.id,
                 r.state.counts.total());
    r.info.counters = counters_;
    add_batch(std::make_shared<batch::Batch>(std::move(r.info), std::move(r.state)),
              std::move(r.recorded), std::move(r.crashes));
  }
}

std::size_t Pool::chunk_size() const {
  const auto per_job = job_ns_.load(std::memory_order_relaxed);
  if (per_job <= 0) {
    return 1;  // nothing measured yet: hand out single jobs until we know
  }
  return std::clamp<std::size_t>(static_cast<std::size_t>(kChunkTargetNs / per_job), 1, max_chunk_);
}

JobChunk* Pool::take_free_chunk() {
  JobChunk* chunk = nullptr;
  if (free_chunks_.try_pop(chunk)) {
    return chunk;
  }
  return new JobChunk();
}

void Pool::recycle(JobChunk* chunk) {
  chunk->reset();
  free_chunks_.push(chunk);
}

void Pool::feeder_loop() {
  std::vector<OpenBatch> open;
  std::size_t turn = 0;
  JobChunk* chunk = nullptr;
  std::uint64_t generation = generation_.load();
  try {
    while (!stopping_.load(std::memory_order_acquire)) {
      {
        std::unique_lock lock(mutex_);
        // Results cannot be written: no job starts, so none piles up in memory.
        feeder_cv_.wait(lock, [&] { return stopping_.load() || !storage_failing_.load(); });
        if (open.empty()) {
          feeder_cv_.wait(lock, [&] { return stopping_.load() || (!held_ && !waiting_.empty()); });
        }
        if (stopping_.load()) {
          break;
        }
        if (generation != settings_->generation) {
          generation = settings_->generation;
          apply_queue_settings(settings_->config);  // a reload changed `queue` or `workers`
        }
        const auto max_job_bytes = settings_->config.max_job_bytes;
        while (open.size() < kMaxOpenBatches && !waiting_.empty()) {
          auto w = std::move(waiting_.front());
          waiting_.pop_front();
          auto b = w.batch;
          OpenBatch ob{b, nullptr, nullptr, std::move(w.recorded), std::move(w.crashes)};
          std::string why;
          const int fd = batch::open_batch_input(b->input_path(), why);
          if (fd < 0) {
            spdlog::error("batch '{}' (pool '{}'): cannot open its input {}: {}", b->id(), name_,
                          b->input_path().string(), why);
          } else {
            ob.reader =
                std::make_unique<batch::LineReader>(fd, max_job_bytes, simdjson::SIMDJSON_PADDING);
            ob.parser = std::make_unique<batch::JobParser>(b->info().format, max_job_bytes);
          }
          open.push_back(std::move(ob));
        }
      }
      if (open.empty()) {
        continue;
      }
      turn %= open.size();
      if (!feed_one(open[turn], chunk)) {
        auto done = std::move(open[turn].batch);
        open.erase(open.begin() + static_cast<std::ptrdiff_t>(turn));
        done->mark_read_all();
        if (done->release_pending()) {
          finish_batch(done);
        }
      } else {
        ++turn;
      }
    }
  } catch (const tbb::user_abort&) {
    // stop() aborted a blocked push: the chunk we were pushing is ours again.
  }
  if (chunk != nullptr) {
    recycle(chunk);
  }
}

void Pool::push(JobChunk* chunk) {
  for (;;) {
    if (stopping_.load()) {
      throw tbb::user_abort();  // the feeder's callers end on it
    }
    // Sleeps while the queue is full: the pool's backpressure. stop() wakes it.
    if (queue_.try_push(chunk) ||
        space_.wait_until([&] { return queue_.try_push(chunk); }, kMonitorTick)) {
      idle_.notify();  // a worker, if one waits for work
      return;
    }
  }
}

bool Pool::feed_one(OpenBatch& open, JobChunk*& chunk) {
  if (!open.reader) {
    return false;
  }
  batch::Batch& b = *open.batch;
  if (chunk == nullptr) {
    chunk = take_free_chunk();
  }
  const std::size_t want = chunk_size();
  const auto max_crashes = settings()->config.max_crashes;
  bool more = true;
  batch::Line line;
  // Jobs read, added to the batch's count once per chunk rather than once each (an atomic
  // add), and before any result is recorded, so that the count never trails the results.
  std::uint64_t jobs_read = 0;
  const auto count_read = [&] {
    if (jobs_read > 0) {
      b.add_jobs_read(std::exchange(jobs_read, 0));
    }
  };
  while (chunk->size() < want && chunk->arena.size() < kMaxChunkBytes) {
    try {
      if (!open.reader->next(line)) {
        more = false;
        break;
      }
    } catch (const std::exception& e) {
      spdlog::error(
          "batch '{}' (pool '{}'): reading its input failed after line {}: {}; the rest "
          "of the file is not read",
          b.id(), name_, line.number, e.what());
      more = false;
      break;
    }
    auto parsed = open.parser->parse(line);
    if (parsed.skip) {
      continue;
    }
    if (!open.recorded.empty()) {
      auto it = open.recorded.find(std::string(parsed.id));
      if (it != open.recorded.end()) {
        if (--it->second == 0) {
          open.recorded.erase(it);
        }
        continue;  // it has its result from an earlier run
      }
    }
    ++jobs_read;
    if (!open.crashes.empty()) {
      if (auto it = open.crashes.find(line.number);
          it != open.crashes.end() && it->second.given_up(max_crashes)) {
        const auto crashes = it->second.crashes;
        spdlog::error("batch '{}' (pool '{}'): job '{}' crashed the daemon {} times: not run again",
                      b.id(), name_, parsed.id, crashes);
        count_read();
        b.record(parsed.id, batch::JobStatus::kFailed, static_cast<int>(crashes), 0.0,
                 fmt::format("crashed the daemon {} times", crashes));
        continue;
      }
    }
    if (!parsed.valid) {
      count_read();
      b.record(parsed.id, batch::JobStatus::kInvalid, 0, 0.0, parsed.error);
      continue;
    }
    if (b.cancelled()) {
      count_read();
      b.record(parsed.id, batch::JobStatus::kCancelled, 0, 0.0,
               "batch cancelled before the job started");
      continue;
    }
    chunk->add(parsed.id, parsed.payload, line.number);
  }
  count_read();
  if (chunk->size() > 0) {
    chunk->batch = open.batch;
    b.add_pending(chunk->size());
    queued_.fetch_add(chunk->size(), std::memory_order_relaxed);
    push(chunk);
    chunk = nullptr;
  }
  return more;
}

void Pool::finish_batch(const std::shared_ptr<batch::Batch>& b) {
  try {
    b->finish();
  } catch (const std::exception& e) {
    // Its summary is not written: the housekeeping tries again once results can be written.
    spdlog::error("batch '{}' (pool '{}'): cannot finish: {}", b->id(), name_, e.what());
    note_write_failure(e.what());  // retried with the rest once writing works again
    std::lock_guard lock(mutex_);
    unfinished_.push_back(b);
    return;
  }
  std::lock_guard lock(mutex_);
  std::erase(active_, b);
  if (inbox_backlog_ && active_.size() < kMaxClaimed / 2) {
    claimer_cv_.notify_one();
  }
}

void Pool::claimer_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_.load()) {
    const auto room = [&] { return inbox_backlog_ && active_.size() < kMaxClaimed / 2; };
    claimer_cv_.wait(lock, [&] { return stopping_.load() || room(); });
    if (stopping_.load()) {
      break;
    }
    const auto limit = kMaxClaimed - active_.size();
    lock.unlock();
    claim_from_inbox(limit);
    lock.lock();
  }
}

void Pool::note_write_failure(const std::string& why) {
  last_failure_ns_.store(Clock::now().time_since_epoch().count());
  if (!storage_failing_.exchange(true)) {
    spdlog::error(
        "pool '{}': cannot write results ({}): no new job starts and no batch is claimed until "
        "they can be written",
        name_, why);
  }
}

void Pool::note_write_success() {
  if (!storage_failing_.exchange(false)) {
    return;
  }
  spdlog::info("pool '{}': results can be written again: resuming", name_);
  feeder_cv_.notify_all();
  std::vector<std::shared_ptr<batch::Batch>> retry;
  {
    std::lock_guard lock(mutex_);
    retry.swap(unfinished_);
  }
  for (const auto& b : retry) {
    finish_batch(b);
  }
  claim_from_inbox();  // batches that arrived meanwhile stayed there
}

void Pool::claim_from_inbox(std::size_t limit) {
  {
    std::lock_guard lock(mutex_);
    inbox_backlog_ = false;
  }
  std::error_code ec;
  std::size_t claimed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(spool_.inbox(), ec)) {
    const auto name = entry.path().filename().string();
    if (name.starts_with('.')) {
      continue;
    }
    if (++claimed > limit) {
      std::lock_guard lock(mutex_);
      inbox_backlog_ = true;  // the rest at the next look
      return;
    }
    try {
      claim(name);
    } catch (const std::exception& e) {
      spdlog::error("pool '{}': cannot claim inbox/{}: {}", name_, name, e.what());
    }
    std::lock_guard lock(mutex_);
    if (inbox_backlog_ || storage_failing_.load()) {
      return;  // full again: the next look goes on
    }
  }
}

void Pool::monitor_loop() {
  std::unique_lock lock(monitor_mutex_);
  last_tick_ns_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  while (!monitor_cv_.wait_for(lock, kMonitorTick, [&] { return stopping_.load(); })) {
    last_tick_ns_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    std::vector<std::shared_ptr<batch::Batch>> batches;
    {
      std::lock_guard pool_lock(mutex_);
      batches = active_;
    }
    // Group commit: one fsync per batch per tick, however many results arrived.
    std::string failure;
    for (const auto& b : batches) {
      if (!b->flush(true) && failure.empty()) {
        failure = b->write_error();
      }
    }
    if (!failure.empty()) {
      note_write_failure(failure);
    } else if (storage_failing_.load() &&
               Clock::now().time_since_epoch().count() - last_failure_ns_.load() >
                   std::chrono::nanoseconds(kStorageRetry).count()) {
      note_write_success();
    }
    check_stuck_workers();
    std::lock_guard pool_lock(mutex_);
    if (retire_ > 0) {
      idle_.wake_all();  // a worker that is to leave may have been busy at the first wake-up
    }
  }
}

void Pool::check_stuck_workers() {
  const auto now = Clock::now();
  const auto limit = (now - kAbandonGrace).time_since_epoch().count();
  std::vector<std::shared_ptr<batch::Batch>> to_finish;  // finished outside the lock
  std::unique_lock lock(mutex_);
  for (auto& worker : workers_) {
    if (worker->state.load(std::memory_order_acquire) != Worker::kRunning ||
        worker->deadline_ns.load(std::memory_order_relaxed) >= limit) {
      continue;
    }
    int expected = Worker::kRunning;
    if (!worker->state.compare_exchange_strong(expected, Worker::kAbandoned,
                                               std::memory_order_acq_rel)) {
      continue;  // it returned just now
    }
    // From here on the stuck thread writes nothing of its own: what it published before it
    // started the attempt is ours to read.
    JobChunk* chunk = worker->chunk;
    abandoned_.fetch_add(1, std::memory_order_relaxed);
    auto b = chunk->batch;  // null for a Redis pool's chunk
    // The results of the chunk's jobs that ended before this one.
    const auto earlier = worker->results.size();
    if (b) {
      b->commit(worker->results);
    }
    const std::string id(chunk->id(worker->index));
    spdlog::error(
        "pool '{}': job '{}' of batch '{}' overran its deadline by more than {} s: worker "
        "abandoned and replaced",
        name_, id, chunk->owner().id(), kAbandonGrace.count());
    // The jobs of the chunk not yet started go to the replacement worker, copied: the stuck
    // thread may still read its own job from the old chunk.
    JobChunk* rest = nullptr;
    if (chunk->next < chunk->size()) {
      rest = take_free_chunk();
      rest->batch = b;
      rest->remote = chunk->remote;
      for (std::size_t i = chunk->next; i < chunk->size(); ++i) {
        rest->add(chunk->id(i), chunk->payload(i), chunk->line(i), chunk->tag(i));
      }
      queued_.fetch_add(rest->size(), std::memory_order_relaxed);  // waiting again
    }
    const double ms = std::chrono::duration<double, std::milli>(now - worker->first_start).count();
    const auto timeout_ms = worker->settings->config.timeout.value_or(std::chrono::milliseconds(0));
    const auto why = fmt::format(
        "deadline of {} ms exceeded; the processor did not return within {} s after it and its "
        "worker was abandoned",
        timeout_ms.count(), kAbandonGrace.count());
    if (b) {
      b->record(id, batch::JobStatus::kTimeout, worker->attempt, ms, why);
    } else {
      // One try: when Redis is down the entry stays pending and is taken over later.
      record_remote(monitor_recorder_, *chunk,
                    {{worker->index, batch::JobStatus::kTimeout, worker->attempt, ms, why}},
                    /*retry=*/false);
    }
    if (chunk->shared_owners.fetch_add(1, std::memory_order_acq_rel) == 1) {
      delete chunk;  // the stuck thread has returned and let go already
    }
    worker->thread.detach();
    --workers_running_;
    try {
      worker =
          make_worker_locked(settings_->library->create(settings_->config.plugin_config), rest);
    } catch (const std::exception& e) {
      spdlog::error("pool '{}': cannot create a processor for a replacement worker: {}", name_,
                    e.what());
      if (rest != nullptr) {
        queued_.fetch_sub(rest->size(), std::memory_order_relaxed);
        if (b) {
          for (std::size_t i = 0; i < rest->size(); ++i) {
            b->record(rest->id(i), batch::JobStatus::kFailed, 0, 0.0,
                      fmt::format("no worker could take the job: {}", e.what()));
          }
        }
        const auto n = rest->size();
        recycle(rest);  // a Redis pool's entries stay pending: taken over later
        if (b && b->release_pending(n)) {
          to_finish.push_back(b);
        }
      }
    }
    if (b && b->release_pending(earlier + 1)) {
      to_finish.push_back(b);
    }
  }
  lock.unlock();
  for (const auto& b : to_finish) {
    finish_batch(b);
  }
}

void Pool::stop(std::chrono::milliseconds timeout) {
  if (stopping_.exchange(true)) {
    return;
  }
  spdlog::info("pool '{}' stopping: no new jobs start; running jobs have {} ms to finish", name_,
               timeout.count());
  feeder_cv_.notify_all();
  monitor_cv_.notify_all();
  space_.wake_all();  // a feeder waiting for room in the queue
  idle_.wake_all();   // workers waiting for work
  if (feeder_.joinable()) {
    feeder_.join();
  }
  if (monitor_.joinable()) {
    monitor_.join();
  }
  {
    std::lock_guard lock(mutex_);  // so that the claimer cannot miss the wake-up
  }
  claimer_cv_.notify_all();
  if (claimer_.joinable()) {
    claimer_.join();
  }
  if (listener_.joinable()) {
    listener_.join();
  }
  JobChunk* chunk = nullptr;
  while (queue_.try_pop(chunk)) {
    if (chunk != nullptr) {
      queued_.fetch_sub(chunk->size(), std::memory_order_relaxed);
      recycle(chunk);  // no result yet: these jobs run after the next start
    }
  }
  // Wake idle workers until every one has seen stopping_ (one may start waiting just after a
  // wake-up); busy ones leave after their current job.
  const auto wait_all = [&](std::unique_lock<std::mutex>& lock, Clock::duration limit) {
    const auto until = Clock::now() + limit;
    while (workers_running_ > 0 && Clock::now() < until) {
      idle_.wake_all();
      workers_cv_.wait_for(lock, std::min<Clock::duration>(until - Clock::now(), kMonitorTick));
    }
    return workers_running_ == 0;
  };
  std::unique_lock lock(mutex_);
  if (!wait_all(lock, timeout)) {
    spdlog::warn(
        "pool '{}': {} jobs still running after {} ms: cancelling them; they run again "
        "after the next start",
        name_, busy_locked(), timeout.count());
    discard_.store(true);
    for (const auto& b : active_) {
      b->interrupt();
    }
    if (!wait_all(lock, std::chrono::seconds(2))) {
      spdlog::error("pool '{}': {} workers ignore cancellation: left behind", name_,
                    workers_running_);
    }
  }
  for (auto& t : retired_threads_) {
    lock.unlock();
    t.join();
    lock.lock();
  }
  retired_threads_.clear();
  for (auto& w : workers_) {
    if (w->thread.joinable()) {
      if (workers_running_ == 0) {
        lock.unlock();
        w->thread.join();
        lock.lock();
      } else {
        w->thread.detach();
      }
    }
  }
  for (const auto& b : active_) {
    if (!b->flush(true)) {
      spdlog::error(
          "batch '{}' (pool '{}'): writing results failed: {}; its jobs without a "
          "result run after the next start",
          b->id(), name_, b->write_error());
    }
  }
}

int Pool::busy_locked() const {
  return static_cast<int>(std::count_if(workers_.begin(), workers_.end(), [](const auto& w) {
    return w->state.load(std::memory_order_relaxed) == Worker::kRunning;
  }));
}

PoolStatus Pool::status() const {
  const auto current = settings();
  PoolStatus s;
  s.name = name_;
  s.plugin = current->config.plugin;
  s.workers = current->config.workers;
  {
    std::lock_guard lock(mutex_);
    s.busy = busy_locked();
  }
  s.queued = queued_.load(std::memory_order_relaxed);
  s.abandoned = abandoned_.load(std::memory_order_relaxed);
  s.on_error = current->config.on_error;
  if (redis_) {
    s.redis = redis_ok_.load() ? "connected" : "unavailable";
  }
  return s;
}

bool Pool::alive(Clock::duration limit) const {
  if (!started_.load() || stopping_.load()) {
    return true;
  }
  const auto last =
      Clock::time_point(Clock::duration(last_tick_ns_.load(std::memory_order_relaxed)));
  return Clock::now() - last < limit;
}

std::shared_ptr<batch::Batch> Pool::find_batch(std::string_view id) const {
  std::lock_guard lock(mutex_);
  for (const auto& b : active_) {
    if (b->id() == id) {
      return b;
    }
  }
  return nullptr;
}

std::vector<BatchStatus> Pool::batches() const {
  std::vector<BatchStatus> out;
  std::lock_guard lock(mutex_);
  for (const auto& b : active_) {
    const auto c = b->counts();
    out.push_back({b->id(), name_, c.total(), b->jobs_read(), c.failed + c.timeout + c.invalid,
                   b->read_all()});
  }
  return out;
}

}  // namespace barista::pool
