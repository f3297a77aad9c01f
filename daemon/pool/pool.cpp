#include "daemon/pool/pool.hpp"

#include "daemon/batch/line_reader.hpp"
#include "daemon/pool/worker.hpp"

#include <fcntl.h>

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
constexpr std::size_t kMaxChunkJobs = 64;
constexpr std::size_t kMaxChunkBytes = 256 * 1024;
// Batches read at once, round-robin, by a pool's feeder; the others wait their turn.
constexpr std::size_t kMaxOpenBatches = 4;
constexpr auto kMonitorTick = std::chrono::milliseconds(50);
constexpr auto kAbandonGrace = std::chrono::seconds(1);

}  // namespace

struct Pool::OpenBatch {
  std::shared_ptr<batch::Batch> batch;
  std::unique_ptr<batch::LineReader> reader;
  std::unique_ptr<batch::JobParser> parser;
  std::unordered_map<std::string, std::uint32_t> recorded;
};

Pool::Pool(config::PoolConfig config, std::shared_ptr<const plugin::PluginLibrary> library,
           const std::filesystem::path& spool)
    : config_(std::move(config)), library_(std::move(library)), spool_(spool, config_.name) {
  if (config_.rate) {
    rate_.emplace(config_.rate->count, config_.rate->per);
  }
  const auto workers = static_cast<std::size_t>(config_.workers);
  max_chunk_ = std::clamp<std::size_t>(config_.queue / (2 * workers), 1, kMaxChunkJobs);
  // Capacity in chunks, so that about `queue` jobs wait at most (and every worker has one).
  queue_.set_capacity(static_cast<std::ptrdiff_t>(
      std::max(workers, (config_.queue + max_chunk_ - 1) / max_chunk_)));
  for (int i = 0; i < config_.workers; ++i) {
    spare_processors_.push_back(library_->create(config_.plugin_config));
  }
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

void Pool::start() {
  std::lock_guard lock(mutex_);
  while (!spare_processors_.empty()) {
    auto worker = std::make_shared<Worker>(std::move(spare_processors_.back()));
    spare_processors_.pop_back();
    ++workers_running_;
    worker->thread = std::thread([this, worker] { worker_loop(worker); });
    workers_.push_back(worker);
  }
  feeder_ = std::thread([this] { feeder_loop(); });
  monitor_ = std::thread([this] { monitor_loop(); });
  spdlog::info("pool '{}' up: plugin '{}' {} ({}), {} workers, queue {}, on_error {}",
               config_.name, library_->name(), library_->version(), library_->path().string(),
               config_.workers, config_.queue,
               config_.on_error == config::OnError::kCancelAll ? "cancel_all" : "continue");
}

void Pool::add_batch(std::shared_ptr<batch::Batch> batch,
                     std::unordered_map<std::string, std::uint32_t> recorded) {
  {
    std::lock_guard lock(mutex_);
    active_.push_back(batch);
    waiting_.emplace_back(std::move(batch), std::move(recorded));
  }
  feeder_cv_.notify_one();
}

bool Pool::claim(std::string_view name) {
  auto info = spool_.claim(name, config_.on_error == config::OnError::kCancelAll);
  if (!info) {
    return false;
  }
  spdlog::info("pool '{}': batch '{}' claimed from inbox/{}", config_.name, info->id, name);
  add_batch(std::make_shared<batch::Batch>(std::move(*info)));
  return true;
}

void Pool::recover() {
  for (auto& r : spool_.recover(config_.on_error == config::OnError::kCancelAll)) {
    spdlog::info("pool '{}': resuming batch '{}' ({} results already recorded)", config_.name,
                 r.info.id, r.state.counts.total());
    add_batch(std::make_shared<batch::Batch>(std::move(r.info), std::move(r.state)),
              std::move(r.recorded));
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
  try {
    while (!stopping_.load(std::memory_order_acquire)) {
      {
        std::unique_lock lock(mutex_);
        if (open.empty()) {
          feeder_cv_.wait(lock, [&] { return stopping_.load() || !waiting_.empty(); });
        }
        if (stopping_.load()) {
          break;
        }
        while (open.size() < kMaxOpenBatches && !waiting_.empty()) {
          auto [b, recorded] = std::move(waiting_.front());
          waiting_.pop_front();
          OpenBatch ob{b, nullptr, nullptr, std::move(recorded)};
          const int fd = ::open(b->input_path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
          if (fd < 0) {
            spdlog::error("batch '{}' (pool '{}'): cannot open its input {}: {}", b->id(),
                          config_.name, b->input_path().string(), std::strerror(errno));
          } else {
            ob.reader = std::make_unique<batch::LineReader>(fd, config_.max_job_bytes,
                                                            simdjson::SIMDJSON_PADDING);
            ob.parser = std::make_unique<batch::JobParser>(b->info().format, config_.max_job_bytes);
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

bool Pool::feed_one(OpenBatch& open, JobChunk*& chunk) {
  if (!open.reader) {
    return false;
  }
  batch::Batch& b = *open.batch;
  if (chunk == nullptr) {
    chunk = take_free_chunk();
  }
  const std::size_t want = chunk_size();
  bool more = true;
  batch::Line line;
  while (chunk->size() < want && chunk->arena.size() < kMaxChunkBytes) {
    try {
      if (!open.reader->next(line)) {
        more = false;
        break;
      }
    } catch (const std::exception& e) {
      spdlog::error("batch '{}' (pool '{}'): reading its input failed after line {}: {}; the rest "
                    "of the file is not read",
                    b.id(), config_.name, line.number, e.what());
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
    b.add_jobs_read(1);
    if (!parsed.valid) {
      b.record(parsed.id, batch::JobStatus::kInvalid, 0, 0.0, parsed.error);
      continue;
    }
    if (b.cancelled()) {
      b.record(parsed.id, batch::JobStatus::kCancelled, 0, 0.0,
               "batch cancelled before the job started");
      continue;
    }
    chunk->add(parsed.id, parsed.payload);
  }
  if (chunk->size() > 0) {
    chunk->batch = open.batch;
    b.add_pending(chunk->size());
    queued_.fetch_add(chunk->size(), std::memory_order_relaxed);
    queue_.push(chunk);  // blocks while the queue is full: the pool's backpressure
    chunk = nullptr;
  }
  return more;
}

void Pool::finish_batch(const std::shared_ptr<batch::Batch>& b) {
  try {
    b->finish();
  } catch (const std::exception& e) {
    spdlog::error("batch '{}' (pool '{}'): cannot finish: {}", b->id(), config_.name, e.what());
  }
  std::lock_guard lock(mutex_);
  std::erase(active_, b);
}

void Pool::monitor_loop() {
  std::unique_lock lock(monitor_mutex_);
  while (!monitor_cv_.wait_for(lock, kMonitorTick, [&] { return stopping_.load(); })) {
    std::vector<std::shared_ptr<batch::Batch>> batches;
    {
      std::lock_guard pool_lock(mutex_);
      batches = active_;
    }
    // Group commit: one fsync per batch per tick, however many results arrived.
    for (const auto& b : batches) {
      try {
        b->flush(true);
      } catch (const std::exception& e) {
        spdlog::error("batch '{}' (pool '{}'): writing results failed: {}", b->id(), config_.name,
                      e.what());
      }
    }
    if (config_.timeout) {
      check_stuck_workers();
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
    busy_.fetch_sub(1, std::memory_order_relaxed);
    abandoned_.fetch_add(1, std::memory_order_relaxed);
    auto b = chunk->batch;
    const std::string id(chunk->id(worker->index));
    spdlog::error("pool '{}': job '{}' of batch '{}' overran its deadline by more than {} s: worker "
                  "abandoned and replaced",
                  config_.name, id, b->id(), kAbandonGrace.count());
    // The jobs of the chunk not yet started go to the replacement worker, copied: the stuck
    // thread may still read its own job from the old chunk.
    JobChunk* rest = nullptr;
    if (chunk->next < chunk->size()) {
      rest = take_free_chunk();
      rest->batch = b;
      for (std::size_t i = chunk->next; i < chunk->size(); ++i) {
        rest->add(chunk->id(i), chunk->payload(i));
      }
    }
    const double ms =
        std::chrono::duration<double, std::milli>(now - worker->first_start).count();
    const int attempt = worker->attempt;
    if (chunk->shared_owners.fetch_add(1, std::memory_order_acq_rel) == 1) {
      delete chunk;  // the stuck thread has returned and let go already
    }
    b->record(id, batch::JobStatus::kTimeout, attempt, ms,
              fmt::format("deadline of {} ms exceeded; the processor did not return within {} s "
                          "after it and its worker was abandoned",
                          config_.timeout->count(), kAbandonGrace.count()));
    worker->thread.detach();
    --workers_running_;
    try {
      auto fresh = std::make_shared<Worker>(library_->create(config_.plugin_config));
      fresh->orphan = rest;
      ++workers_running_;
      fresh->thread = std::thread([this, fresh] { worker_loop(fresh); });
      worker = fresh;
    } catch (const std::exception& e) {
      spdlog::error("pool '{}': cannot create a processor for a replacement worker: {}",
                    config_.name, e.what());
      if (rest != nullptr) {
        queued_.fetch_sub(rest->size(), std::memory_order_relaxed);
        for (std::size_t i = 0; i < rest->size(); ++i) {
          b->record(rest->id(i), batch::JobStatus::kFailed, 0, 0.0,
                    fmt::format("no worker could take the job: {}", e.what()));
        }
        const auto n = rest->size();
        recycle(rest);
        if (b->release_pending(n)) {
          to_finish.push_back(b);
        }
      }
    }
    if (b->release_pending()) {
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
  spdlog::info("pool '{}' stopping: no new jobs start; running jobs have {} ms to finish",
               config_.name, timeout.count());
  feeder_cv_.notify_all();
  monitor_cv_.notify_all();
  queue_.abort();  // wakes a feeder blocked on a full queue and workers waiting for work
  if (feeder_.joinable()) {
    feeder_.join();
  }
  if (monitor_.joinable()) {
    monitor_.join();
  }
  JobChunk* chunk = nullptr;
  while (queue_.try_pop(chunk)) {
    if (chunk != nullptr) {
      recycle(chunk);
    }
  }
  std::vector<std::shared_ptr<Worker>> workers;
  {
    std::lock_guard lock(mutex_);
    workers = workers_;
  }
  for (std::size_t i = 0; i < workers.size(); ++i) {
    queue_.try_push(nullptr);  // one stop sentinel per worker, for those not yet waiting
  }
  std::unique_lock lock(mutex_);
  if (!workers_cv_.wait_for(lock, timeout, [&] { return workers_running_ == 0; })) {
    spdlog::warn("pool '{}': {} jobs still running after {} ms: cancelling them; they run again "
                 "after the next start",
                 config_.name, busy_.load(), timeout.count());
    discard_.store(true);
    for (const auto& b : active_) {
      b->interrupt();
    }
    if (!workers_cv_.wait_for(lock, std::chrono::seconds(2), [&] { return workers_running_ == 0; })) {
      spdlog::error("pool '{}': {} workers ignore cancellation: left behind", config_.name,
                    workers_running_);
    }
  }
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
    try {
      b->flush(true);
    } catch (const std::exception& e) {
      spdlog::error("batch '{}': writing results failed: {}", b->id(), e.what());
    }
  }
}

PoolStatus Pool::status() const {
  PoolStatus s;
  s.name = config_.name;
  s.plugin = config_.plugin;
  s.workers = config_.workers;
  s.busy = busy_.load(std::memory_order_relaxed);
  s.queued = queued_.load(std::memory_order_relaxed);
  s.abandoned = abandoned_.load(std::memory_order_relaxed);
  s.on_error = config_.on_error;
  return s;
}

std::vector<BatchStatus> Pool::batches() const {
  std::vector<BatchStatus> out;
  std::lock_guard lock(mutex_);
  for (const auto& b : active_) {
    const auto c = b->counts();
    out.push_back({b->id(), config_.name, c.total(), b->jobs_read(), c.failed + c.timeout + c.invalid});
  }
  return out;
}

}  // namespace barista::pool
