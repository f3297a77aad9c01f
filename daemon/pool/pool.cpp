#include "daemon/pool/pool.hpp"

#include "daemon/config/config_diff.hpp"
#include "daemon/pool/tuning.hpp"
#include "daemon/pool/worker.hpp"

#include <algorithm>
#include <climits>
#include <cstdint>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::pool {
namespace {

using RealTime = std::chrono::steady_clock;  // the pool's own housekeeping (clock.hpp)
using namespace tuning;

}  // namespace

Pool::Pool(config::PoolConfig config, std::shared_ptr<const plugin::PluginLibrary> library,
           std::shared_ptr<Source> source, std::shared_ptr<Sink> sink, const Clock& clock)
    : name_(config.name), clock_(clock), source_(std::move(source)), sink_(std::move(sink)) {
  fresh_processors_ = make_processors(config, *library);
  auto settings = std::make_shared<PoolSettings>();
  if (config.rate) {
    settings->rate = std::make_shared<RateLimiter>(config.rate->count, config.rate->per, clock_);
  }
  settings->generation = generation_.load();
  settings->library = std::move(library);
  settings->config = std::move(config);
  apply_queue_settings(settings->config);
  gate_.configure(settings->config.per_key,
                  std::max<std::size_t>(settings->config.queue, kMinLookahead));
  queue_generation_ = settings->generation;
  settings_ = std::move(settings);
  source_->attach(*this);
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
  out.reserve(static_cast<std::size_t>(config.workers));
  for (int i = 0; i < config.workers; ++i) {
    out.push_back(library.create(config.plugin_config));
  }
  return out;
}

void Pool::apply_queue_settings(const config::PoolConfig& config) {
  const auto workers = static_cast<std::size_t>(config.workers);
  // A chunk holds half the queue at most, so that one queued behind another finds room.
  max_chunk_ = std::clamp<std::size_t>(config.queue / 2, 1, kMaxChunkJobs);
  queue_jobs_ = config.queue;
  // Capacity in chunks: every worker can have one waiting, and `queue` jobs fit in chunks of
  // `queue / (2 × workers)`, so that slow jobs (a chunk each) are not read far ahead of the
  // workers. The readers stop at `queue` jobs too, whatever the chunks. Called by the reader
  // only (or before anything is read): only push() and the reader read it.
  const auto spread = std::clamp<std::size_t>(config.queue / (2 * workers), 1, kMaxChunkJobs);
  const auto capacity = std::max(workers, (config.queue + spread - 1) / spread);
  queue_chunks_ = static_cast<std::ptrdiff_t>(capacity);
  queue_.set_capacity(static_cast<std::ptrdiff_t>(capacity));
  refill_at_.store(static_cast<std::ptrdiff_t>(capacity / 2), std::memory_order_relaxed);
}

void Pool::sync_queue_settings() {
  if (queue_generation_ == generation()) {
    return;
  }
  std::lock_guard lock(mutex_);
  queue_generation_ = settings_->generation;
  apply_queue_settings(settings_->config);  // a reload changed `queue` or `workers`
}

std::shared_ptr<Pool::Worker> Pool::spawn_worker_locked(plugin::ProcessorHandle processor,
                                                        JobChunk* orphan) {
  auto worker = std::make_shared<Worker>(std::move(processor), sink_->writer());
  worker->settings = settings_;
  worker->orphan = orphan;
  ++workers_running_;
  worker->thread = std::thread([this, worker] { worker_loop(worker); });
  workers_.push_back(worker);
  return worker;
}

void Pool::release() {
  {
    std::lock_guard lock(mutex_);
    held_ = false;
    released_ = true;  // a start() that comes after does not hold it again
  }
  released_cv_.notify_all();
  idle_.wake_all();  // workers read what waited
}

void Pool::wait_released() {
  std::unique_lock lock(mutex_);
  released_cv_.wait(lock, [&] { return stopping_.load() || !held_; });
}

void Pool::start(bool hold) {
  {
    std::lock_guard lock(mutex_);
    while (!fresh_processors_.empty()) {
      auto processor = std::move(fresh_processors_.back());
      fresh_processors_.pop_back();
      spawn_worker_locked(std::move(processor), nullptr);
    }
    started_ = true;
    held_ = hold && !released_;
    monitor_ = std::thread([this] { monitor_loop(); });
  }
  source_->start();
  const auto current = settings();
  const auto& cfg = current->config;
  const auto& lib = *current->library;
  const auto where = lib.path().empty() ? std::string("built in") : lib.path().string();
  spdlog::info(
      "pool '{}' up: plugin '{}' {} ({}{}), {} workers, queue {}, on_error {}{}", name_, lib.name(),
      lib.version(), where, lib.health() ? ", in worker processes" : "", cfg.workers, cfg.queue,
      cfg.on_error == config::OnError::kCancelAll ? "cancel_all" : "continue",
      cfg.redis
          ? fmt::format(", redis {}:{} stream '{}' group '{}' consumer '{}'", cfg.redis->host,
                        cfg.redis->port, cfg.redis->stream, cfg.redis->group, cfg.redis->consumer)
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
                                                         settings->config.rate->per, clock_);
  }
  settings->generation = generation_.load() + 1;
  gate_.configure(settings->config.per_key,
                  std::max<std::size_t>(settings->config.queue, kMinLookahead));
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
  idle_.wake_all();  // a reader applies the new `queue`
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

void Pool::push(JobChunk* chunk) {
  for (;;) {
    if (stopping_.load()) {
      throw tbb::user_abort();  // its callers end on it
    }
    // Sleeps while the queue is full: the pool's backpressure. stop() wakes it.
    if (queue_.try_push(chunk) ||
        space_.wait_until([&] { return queue_.try_push(chunk); }, kMonitorTick)) {
      idle_.notify();  // a worker, if one waits for work
      return;
    }
  }
}

void Pool::feed(JobChunk* chunk) {
  queued_.fetch_add(chunk->size(), std::memory_order_relaxed);
  chunk->queued_at = std::chrono::steady_clock::now();
  try {
    push(chunk);
  } catch (const tbb::user_abort&) {
    queued_.fetch_sub(chunk->size(), std::memory_order_relaxed);
    throw;
  }
}

void Pool::stop(std::chrono::milliseconds timeout) {
  if (stopping_.exchange(true)) {
    return;
  }
  spdlog::info("pool '{}' stopping: no new jobs start; running jobs have {} ms to finish", name_,
               timeout.count());
  {
    std::lock_guard lock(mutex_);  // so that wait_released() cannot miss the wake-up
  }
  released_cv_.notify_all();
  monitor_cv_.notify_all();
  space_.wake_all();  // a feeder waiting for room in the queue
  idle_.wake_all();   // workers waiting for work
  source_->stop();
  if (monitor_.joinable()) {
    monitor_.join();
  }
  JobChunk* chunk = nullptr;
  while (queue_.try_pop(chunk)) {
    if (chunk != nullptr) {
      recycle_unread(chunk);  // no result yet: these jobs run after the next start
    }
  }
  {
    std::lock_guard reader(reader_mutex_);
    if (auto* spare = std::exchange(spare_, nullptr)) {
      has_spare_.store(false);
      recycle_unread(spare);
    }
  }
  // Wake idle workers until every one has seen stopping_ (one may start waiting just after a
  // wake-up); busy ones leave after their current job.
  const auto wait_all = [&](std::unique_lock<std::mutex>& lock, RealTime::duration limit) {
    const auto until = RealTime::now() + limit;
    while (workers_running_ > 0 && RealTime::now() < until) {
      idle_.wake_all();
      workers_cv_.wait_for(lock,
                           std::min<RealTime::duration>(until - RealTime::now(), kMonitorTick));
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
    source_->interrupt();
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
  lock.unlock();
  for (JobChunk* one : gate_.drain()) {
    recycle_unread(one);  // set aside, never started: they run after the next start
  }
  sink_->close();
}

void Pool::set_paused(bool pool, std::set<std::string> keys) {
  paused_.store(pool, std::memory_order_release);
  gate_.set_paused_keys(std::move(keys));
  if (!pool) {
    idle_.wake_all();  // workers that waited for the pause to end
  }
}

int Pool::busy_locked() const {
  return static_cast<int>(std::count_if(workers_.begin(), workers_.end(), [](const auto& w) {
    return w->state.load(std::memory_order_relaxed) == Worker::kRunning;
  }));
}

bool Pool::idle() const {
  std::lock_guard lock(mutex_);
  return queued_.load(std::memory_order_relaxed) == 0 && busy_locked() == 0;
}

std::shared_ptr<const PoolSettings> Pool::settings() const {
  std::lock_guard lock(mutex_);
  return settings_;
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
  if (const auto& health = current->library->health()) {
    s.worker_restarts = health->restarts();
    if (health->given_up()) {
      s.workers_failing = health->reason();
    }
  }
  s.on_error = current->config.on_error;
  s.redis = source_->state();
  s.storage_error = source_->storage_error();
  s.storage_errors = source_->storage_errors();
  s.paused = paused();
  for (const auto& key : paused_keys()) {
    s.paused_keys.push_back(key);
  }
  s.throttles = throttles_.load(std::memory_order_relaxed);
  s.keys_blocked = gate_.blocked_count();
  s.set_aside = gate_.parked();
  // The queue is FIFO: the job at its head has waited no longer than the chunk taken last.
  const auto now = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration oldest{};
  if (queued_.load(std::memory_order_relaxed) > s.set_aside) {
    const auto taken = std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(head_queued_at_ns_.load(std::memory_order_relaxed)));
    oldest = now - taken;
  }
  if (auto aside = gate_.oldest_set_aside()) {
    oldest = std::max(oldest, now - *aside);
  }
  s.oldest_queued_seconds = std::chrono::duration<double>(oldest).count();
  return s;
}

bool Pool::alive(RealTime::duration limit) const {
  if (!started_.load() || stopping_.load()) {
    return true;
  }
  const auto last =
      RealTime::time_point(RealTime::duration(last_tick_ns_.load(std::memory_order_relaxed)));
  return RealTime::now() - last < limit;
}

}  // namespace barista::pool
