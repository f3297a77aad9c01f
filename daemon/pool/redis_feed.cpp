// A pool shared by several daemons through a Redis stream (docs/several-machines.md):
//
//   stream (consumer group) -> feeder (XREADGROUP, only what the queue can take) -> queue
//        -> workers -> result recorded, counted and acked in one script (Recorder)
//
// Crash safety is Redis's: an entry stays pending until its result is recorded, so a daemon that
// dies leaves its jobs to its own next start (own pending entries first) or to the others
// (XAUTOCLAIM after claim_after); the delivery count gives up a job that keeps crashing daemons.
#include "daemon/common/fs.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/pool/worker.hpp"
#include "daemon/redis/stream_store.hpp"

#include <algorithm>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::pool {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kRedisTimeout{2000};
constexpr milliseconds kReadBlock{200};
constexpr milliseconds kFirstBackoff{100};
constexpr milliseconds kMaxBackoff{5000};
// How often the feeder re-reads the state of the batches it holds jobs of (a cancel message
// missed while the listener was reconnecting is still seen) and forgets finished ones.
constexpr milliseconds kRefreshEvery{1000};
// A batch no job of which was seen for this long is forgotten (asked about again if it comes back).
constexpr std::chrono::seconds kForgetAfter{10};

std::string now_iso() { return common::iso8601_utc(std::chrono::system_clock::now()); }

std::string result_line(std::string_view id, batch::JobStatus status, int attempts, double ms,
                        std::string_view text) {
  std::string line;
  batch::append_result_line(line, id, status, attempts, ms, text);
  line.pop_back();  // the '\n': Redis keeps lines, not a file
  return line;
}

std::chrono::seconds ttl_of(const config::RedisConfig& cfg) {
  return std::max(std::chrono::seconds(1),
                  std::chrono::duration_cast<std::chrono::seconds>(cfg.results_ttl));
}

// Sleeps up to `d`, in short steps, unless `stop` becomes true.
template <class Stop>
void pause(milliseconds d, Stop stop) {
  const auto until = Clock::now() + d;
  while (!stop() && Clock::now() < until) {
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), milliseconds(20)));
  }
}

}  // namespace

void Pool::note_redis_down(const std::string& why) {
  if (redis_ok_.exchange(false)) {
    spdlog::error("pool '{}': redis unavailable: {}; retrying with backoff", name_, why);
  }
}

void Pool::note_redis_up() {
  if (!redis_ok_.exchange(true)) {
    spdlog::info("pool '{}': redis reachable again", name_);
  }
}

bool Pool::record_remote(const PoolSettings& settings, std::unique_ptr<redis::Recorder>& recorder,
                         const JobChunk& chunk, const std::vector<RemoteResult>& results,
                         bool retry) {
  if (results.empty()) {
    return true;
  }
  const auto& cfg = settings.config;
  std::vector<redis::Entry> entries(results.size());
  std::vector<std::string> lines(results.size());
  std::vector<redis::Recorder::Result> calls;
  calls.reserve(results.size());
  batch::JobTally tally;
  for (std::size_t k = 0; k < results.size(); ++k) {
    const auto& r = results[k];
    auto& entry = entries[k];
    entry.stream_id = std::string(chunk.tag(r.index));
    entry.batch = chunk.remote->id();
    entry.id = std::string(chunk.id(r.index));
    entry.deliveries = chunk.line(r.index);
    lines[k] = result_line(entry.id, r.status, r.attempts, r.ms, r.text);
    calls.push_back({&entry, batch::to_string(r.status),
                     batch::is_failure(r.status) ? std::string_view(r.text) : std::string_view(),
                     lines[k]});
    ++tally.jobs[static_cast<std::size_t>(r.status)];
    if (r.attempts > 0) {
      tally.observe_duration(r.ms / 1000.0);
    }
  }
  auto backoff = kFirstBackoff;
  for (;;) {
    try {
      if (!recorder) {
        recorder = std::make_unique<redis::Recorder>(*cfg.redis, kRedisTimeout);
      }
      const auto outcomes = recorder->record_many(
          calls, cfg.on_error == config::OnError::kCancelAll, now_iso(), ttl_of(*cfg.redis));
      if (std::any_of(outcomes.begin(), outcomes.end(),
                      [](const auto& o) { return o.cancelled; })) {
        chunk.remote->cancel();  // this daemon's other jobs of the batch stop at once
      }
      counters_->add(tally);
      return true;
    } catch (const redis::RedisError& e) {
      recorder.reset();
      note_redis_down(e.what());
      if (!retry || stopping_.load()) {
        return false;  // pending in Redis: they run again, here after a restart or elsewhere
      }
      pause(backoff, [&] { return stopping_.load(); });
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }
}

std::shared_ptr<RemoteBatch> Pool::remote_batch(redis::StreamStore& store, const std::string& id) {
  std::shared_ptr<RemoteBatch> b;
  {
    std::lock_guard lock(remote_mutex_);
    auto& known = remote_batches_[id];
    known.last_used = Clock::now();
    if (known.batch) {
      return known.batch;
    }
    b = known.batch = std::make_shared<RemoteBatch>(id);
  }
  // Registered first, then asked: a cancel message from now on finds it.
  if (store.batch_cancelled(id)) {
    b->cancel();
  }
  return b;
}

void Pool::refresh_remote_batches(redis::StreamStore& store) {
  std::vector<std::shared_ptr<RemoteBatch>> live;
  const auto forget_before = Clock::now() - kForgetAfter;
  {
    std::lock_guard lock(remote_mutex_);
    std::erase_if(remote_batches_, [&](const auto& kv) {
      const auto& known = kv.second;
      if (known.batch.use_count() == 1 && known.last_used < forget_before) {
        return true;  // no job of it here for a while
      }
      if (!known.batch->cancelled()) {
        live.push_back(known.batch);
      }
      return false;
    });
  }
  for (const auto& b : live) {
    if (store.batch_cancelled(b->id())) {
      b->cancel();
    }
  }
}

void Pool::dispatch_entries(redis::StreamStore& store, std::vector<redis::Entry>& entries,
                            const config::PoolConfig& cfg) {
  const auto want = chunk_size();
  const bool cancel_all = cfg.on_error == config::OnError::kCancelAll;
  // Jobs that get their result without running (a cancelled batch's, malformed ones), recorded
  // together: one round trip for many rather than one each, which made a cancelled batch of
  // thousands of jobs take seconds to end. A failure among them is recorded at once.
  struct Verdict {
    const redis::Entry* entry;
    std::shared_ptr<RemoteBatch> batch;
    batch::JobStatus status;
    std::string error;
    std::string line;
  };
  // At most this many in one round trip: it must end within the connection's timeout.
  constexpr std::size_t kMaxVerdicts = 512;
  std::vector<Verdict> verdicts;
  const auto record_verdicts = [&] {
    if (verdicts.empty()) {
      return;
    }
    std::vector<redis::Recorder::Result> calls;
    calls.reserve(verdicts.size());
    batch::JobTally tally;
    for (const auto& v : verdicts) {
      calls.push_back({v.entry, batch::to_string(v.status),
                       batch::is_failure(v.status) ? std::string_view(v.error) : std::string_view(),
                       v.line});
      ++tally.jobs[static_cast<std::size_t>(v.status)];
    }
    const auto outcomes = store.record_many(calls, cancel_all, now_iso(), ttl_of(*cfg.redis));
    for (std::size_t k = 0; k < outcomes.size() && k < verdicts.size(); ++k) {
      if (outcomes[k].cancelled) {
        verdicts[k].batch->cancel();
      }
    }
    counters_->add(tally);
    verdicts.clear();
  };
  JobChunk* chunk = nullptr;
  const auto push_chunk = [&] {
    // First the verdicts read before it: pushing may wait for room in the queue.
    record_verdicts();
    if (chunk == nullptr) {
      return;
    }
    queued_.fetch_add(chunk->size(), std::memory_order_relaxed);
    try {
      push(chunk);
    } catch (const tbb::user_abort&) {
      // Stopping: the entries stay pending in Redis, and nothing more is pushed (the queue was
      // aborted once: a later push would wait for workers that have left).
      queued_.fetch_sub(chunk->size(), std::memory_order_relaxed);
      recycle(chunk);
      chunk = nullptr;
      throw;
    }
    chunk = nullptr;
  };
  try {
    for (auto& e : entries) {
      if (e.batch.empty()) {
        spdlog::warn("pool '{}': stream entry {} has no batch field: dropped", name_, e.stream_id);
        store.discard(e);
        continue;
      }
      auto b = remote_batch(store, e.batch);
      if (chunk != nullptr && (chunk->remote != b || chunk->size() >= want)) {
        push_chunk();
      }
      // Jobs that get their result without running.
      std::optional<std::pair<batch::JobStatus, std::string>> verdict;
      int attempts = 0;
      if (!e.malformed.empty()) {
        verdict.emplace(batch::JobStatus::kInvalid, e.malformed);
      } else if (e.deliveries > static_cast<std::uint64_t>(cfg.max_crashes) + 1) {
        attempts = static_cast<int>(e.deliveries - 1);
        verdict.emplace(batch::JobStatus::kFailed,
                        fmt::format("crashed {} times", e.deliveries - 1));
        spdlog::error(
            "pool '{}': job '{}' of batch '{}' was delivered {} times without a result: "
            "not run again",
            name_, e.id, e.batch, e.deliveries);
      } else if (b->cancelled()) {
        verdict.emplace(batch::JobStatus::kCancelled, "batch cancelled before the job started");
      }
      if (verdict) {
        auto line = result_line(e.id, verdict->first, attempts, 0.0, verdict->second);
        const bool failure = batch::is_failure(verdict->first);
        verdicts.push_back({&e, b, verdict->first, std::move(verdict->second), std::move(line)});
        // A failure may cancel its batch (cancel_all): recorded at once, as a worker's is.
        if (failure || verdicts.size() >= kMaxVerdicts) {
          record_verdicts();
        }
        continue;
      }
      if (chunk == nullptr) {
        chunk = take_free_chunk();
        chunk->remote = b;
      }
      chunk->add(e.id, e.payload, e.deliveries, e.stream_id);
    }
    push_chunk();
  } catch (...) {
    if (chunk != nullptr) {
      recycle(chunk);  // its entries stay pending in Redis: taken over after claim_after
    }
    throw;
  }
}

void Pool::redis_feeder_loop() {
  {
    std::unique_lock lock(mutex_);
    feeder_cv_.wait(lock, [&] { return stopping_.load() || !held_; });
  }
  std::unique_ptr<redis::StreamStore> store;
  config::RedisConfig current;
  bool own_pending_read = false;  // this consumer's entries left by an earlier run
  auto backoff = kFirstBackoff;
  auto next_claim = Clock::now();
  auto next_refresh = Clock::now() + kRefreshEvery;
  std::uint64_t generation = 0;
  while (!stopping_.load(std::memory_order_acquire)) {
    const auto settings = this->settings();
    const auto& cfg = settings->config;
    if (generation != settings->generation) {
      generation = settings->generation;
      std::lock_guard lock(mutex_);
      apply_queue_settings(cfg);
    }
    try {
      if (!store || current != *cfg.redis) {
        if (store && current.consumer != cfg.redis->consumer) {
          own_pending_read = false;  // a new name: its own pending entries first
        }
        store.reset();
        store = std::make_unique<redis::StreamStore>(*cfg.redis, cfg.max_job_bytes, kRedisTimeout);
        store->ensure_group();
        current = *cfg.redis;
      }
      const auto queued = queued_.load(std::memory_order_relaxed);
      const std::size_t room = cfg.queue > queued ? cfg.queue - queued : 0;
      if (room == 0) {
        std::unique_lock lock(mutex_);
        feeder_cv_.wait_for(lock, milliseconds(5), [&] { return stopping_.load(); });
        continue;
      }
      std::vector<redis::Entry> entries;
      // Entries delivered before (this consumer's left by a crash, or a silent consumer's) are
      // taken one at a time: a delivery counts as a crash towards max_crashes, so only the job
      // that was running may be charged with one. A page of them read at once would charge
      // every job of the page for each crash of the one poison job among them.
      if (!own_pending_read) {
        if (!idle()) {
          // Each alone: the earlier run's pending jobs run one after another, with nothing
          // else running, before any new job is read.
          std::unique_lock lock(mutex_);
          feeder_cv_.wait_for(lock, milliseconds(2), [&] { return stopping_.load(); });
          continue;
        }
        entries = store->read_own_pending(1);
        own_pending_read = entries.empty();
      } else if (Clock::now() >= next_claim) {
        entries = store->claim_idle(1);
        // While there are more to take over, the next one at once; then at intervals.
        next_claim = entries.empty() ? Clock::now() + std::clamp<Clock::duration>(
                                                          cfg.redis->claim_after / 4,
                                                          milliseconds(50), milliseconds(5000))
                                     : Clock::now();
      }
      if (entries.empty() && own_pending_read) {
        entries = store->read_new(room, kReadBlock);
      }
      if (Clock::now() >= next_refresh) {
        refresh_remote_batches(*store);
        next_refresh = Clock::now() + kRefreshEvery;
      }
      note_redis_up();
      backoff = kFirstBackoff;
      dispatch_entries(*store, entries, cfg);
    } catch (const redis::RedisError& e) {
      store.reset();
      note_redis_down(e.what());
      pause(backoff, [&] { return stopping_.load(); });
      backoff = std::min(backoff * 2, kMaxBackoff);
    } catch (const tbb::user_abort&) {
      break;  // stopping
    }
  }
}

bool Pool::idle() const {
  std::lock_guard lock(mutex_);
  return queued_.load(std::memory_order_relaxed) == 0 && busy_locked() == 0;
}

void Pool::cancel_listener_loop() {
  std::unique_ptr<redis::Subscriber> subscriber;
  config::RedisConfig current;
  auto backoff = kFirstBackoff;
  while (!stopping_.load(std::memory_order_acquire)) {
    const auto settings = this->settings();
    try {
      if (!subscriber || current != *settings->config.redis) {
        subscriber.reset();
        current = *settings->config.redis;
        subscriber = std::make_unique<redis::Subscriber>(current, kRedisTimeout,
                                                         std::string(redis::kCancelChannel));
      }
      backoff = kFirstBackoff;
      const auto id = subscriber->next_message(kReadBlock);
      if (!id) {
        continue;
      }
      std::shared_ptr<RemoteBatch> b;
      {
        std::lock_guard lock(remote_mutex_);
        if (auto it = remote_batches_.find(*id); it != remote_batches_.end()) {
          b = it->second.batch;
        }
      }
      if (b && !b->cancelled()) {
        spdlog::warn("pool '{}': batch '{}' cancelled (from redis)", name_, *id);
        b->cancel();
      }
    } catch (const redis::RedisError& e) {
      subscriber.reset();
      note_redis_down(e.what());
      pause(backoff, [&] { return stopping_.load(); });
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }
}

}  // namespace barista::pool
