// A pool shared by several daemons through a Redis stream, as its pool's source: the feeder
// (XREADGROUP, only what the queue can take) hands chunks to the pool; the listener hears
// cancellations.
//
// Crash safety is Redis's: an entry stays pending until its result is recorded, so a daemon that
// dies leaves its jobs to its own next start (own pending entries first) or to the others
// (XAUTOCLAIM after claim_after); the delivery count gives up a job that keeps crashing daemons.
#include "daemon/common/fs.hpp"
#include "daemon/redis/key_leases.hpp"
#include "daemon/redis/recorder.hpp"
#include "daemon/redis/redis_backend.hpp"
#include "daemon/redis/redis_internal.hpp"
#include "daemon/redis/script.hpp"
#include "daemon/redis/stream_store.hpp"

#include <algorithm>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::redis {
using namespace internal;

std::shared_ptr<RemoteBatch> RedisBackend::remote_batch(StreamStore& store, const std::string& id) {
  std::shared_ptr<RemoteBatch> b;
  {
    std::lock_guard lock(mutex_);
    auto& known = batches_[id];
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

void RedisBackend::refresh_remote_batches(StreamStore& store) {
  std::vector<std::shared_ptr<RemoteBatch>> live;
  const auto forget_before = Clock::now() - kForgetAfter;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(batches_, [&](const auto& kv) {
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

namespace {

// Jobs that get their result without running (a cancelled batch's, malformed ones), recorded
// together: one round trip for many rather than one each, which made a cancelled batch of
// thousands of jobs take seconds to end. A failure among them is recorded at once, as a
// worker's is: it may cancel its batch (cancel_all).
class Verdicts {
 public:
  Verdicts(StreamStore& store, const config::PoolConfig& cfg, batch::JobCounters& counters)
      : store_(store), cfg_(cfg), counters_(counters) {}

  void add(const Entry& e, std::shared_ptr<RemoteBatch> b, batch::JobStatus status, int attempts,
           std::string error) {
    auto line = result_line(e.id, status, attempts, 0.0, error);
    pending_.push_back({&e, std::move(b), status, std::move(error), std::move(line)});
    if (batch::is_failure(status) || pending_.size() >= kMaxVerdicts) {
      record();
    }
  }

  void record() {
    if (pending_.empty()) {
      return;
    }
    std::vector<Recorder::Result> calls;
    calls.reserve(pending_.size());
    batch::JobTally tally;
    for (const auto& v : pending_) {
      calls.push_back({v.entry, batch::to_string(v.status),
                       batch::is_failure(v.status) ? std::string_view(v.error) : std::string_view(),
                       v.line});
      ++tally.jobs[static_cast<std::size_t>(v.status)];
    }
    const auto outcomes = store_.record_many(calls, cfg_.on_error == config::OnError::kCancelAll,
                                             now_iso(), ttl_of(*cfg_.redis));
    for (std::size_t k = 0; k < outcomes.size() && k < pending_.size(); ++k) {
      if (outcomes[k].cancelled) {
        pending_[k].batch->cancel();
      }
    }
    counters_.add(tally);
    pending_.clear();
  }

 private:
  // At most this many in one round trip: it must end within the connection's timeout.
  static constexpr std::size_t kMaxVerdicts = 512;
  struct Verdict {
    const Entry* entry;
    std::shared_ptr<RemoteBatch> batch;
    batch::JobStatus status;
    std::string error;
    std::string line;
  };
  StreamStore& store_;
  const config::PoolConfig& cfg_;
  batch::JobCounters& counters_;
  std::vector<Verdict> pending_;
};

// The result an entry gets without running, if any: malformed, delivered too often (it
// crashed daemons), or of a cancelled batch. `attempts`: what its result says.
std::optional<std::pair<batch::JobStatus, std::string>> verdict_of(const std::string& pool,
                                                                   const Entry& e,
                                                                   const RemoteBatch& b,
                                                                   int max_crashes, int& attempts) {
  attempts = 0;
  if (!e.malformed.empty()) {
    return std::pair{batch::JobStatus::kInvalid, e.malformed};
  }
  if (e.deliveries > static_cast<std::uint64_t>(max_crashes) + 1) {
    attempts = static_cast<int>(e.deliveries - 1);
    spdlog::error(
        "pool '{}': job '{}' of batch '{}' was delivered {} times without a result: "
        "not run again",
        pool, e.id, e.batch, e.deliveries);
    return std::pair{batch::JobStatus::kFailed, fmt::format("crashed {} times", e.deliveries - 1)};
  }
  if (b.cancelled()) {
    return std::pair{batch::JobStatus::kCancelled,
                     std::string("batch cancelled before the job started")};
  }
  return std::nullopt;
}

}  // namespace

void RedisBackend::dispatch_entries(StreamStore& store, std::vector<Entry>& entries,
                                    const config::PoolConfig& cfg) {
  const auto want = pool_->chunk_size();
  Verdicts verdicts(store, cfg, *pool_->shared_counters());
  pool::JobChunk* chunk = nullptr;
  const auto push_chunk = [&] {
    // First the verdicts read before it: pushing may wait for room in the queue.
    verdicts.record();
    if (chunk == nullptr) {
      return;
    }
    hold(*chunk);  // before a worker can have it (its result lets the entries go again)
    try {
      pool_->feed(chunk);
    } catch (const tbb::user_abort&) {
      // Stopping: the entries stay pending in Redis, and nothing more is pushed (the queue was
      // aborted once: a later push would wait for workers that have left).
      let_go(*chunk);
      pool_->recycle(chunk);
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
      if (chunk != nullptr && (chunk->batch != b || chunk->size() >= want)) {
        push_chunk();
      }
      int attempts = 0;
      if (auto verdict = verdict_of(name_, e, *b, cfg.max_crashes, attempts)) {
        verdicts.add(e, b, verdict->first, attempts, std::move(verdict->second));
        continue;
      }
      if (chunk == nullptr) {
        chunk = pool_->take_free_chunk();
        chunk->batch = b;
      }
      chunk->add(e.id, e.payload, e.deliveries, e.stream_id, e.key);
    }
    push_chunk();
  } catch (...) {
    if (chunk != nullptr) {
      pool_->recycle(chunk);  // its entries stay pending in Redis: taken over after claim_after
    }
    throw;
  }
}

void RedisBackend::hold(const pool::JobChunk& chunk) {
  std::lock_guard lock(held_mutex_);
  for (std::size_t i = 0; i < chunk.size(); ++i) {
    held_.emplace(chunk.tag(i));
  }
}

void RedisBackend::let_go(const pool::JobChunk& chunk, const std::vector<Gathered>* only) {
  std::lock_guard lock(held_mutex_);
  if (only == nullptr) {
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      held_.erase(std::string(chunk.tag(i)));
    }
    return;
  }
  for (const auto& r : *only) {
    held_.erase(std::string(chunk.tag(r.index)));
  }
}

namespace {

// Resets the idle time of the entries (ARGV[3..]) still pending for this consumer (ARGV[2]) of
// group ARGV[1] on stream KEYS[1], leaving the delivery count as it is (JUSTID). An entry
// another daemon took over meanwhile is left to it. Returns how many were kept.
constexpr const char* kKeepScript = R"lua(
local kept = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
return kept
)lua";

}  // namespace

void RedisBackend::keep_held(Client& client, Script& keep, const config::RedisConfig& cfg) {
  // One script call per this many entries: each ends well within the connection's timeout.
  constexpr std::size_t kPerCall = 500;
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> calls;
  {
    std::lock_guard lock(held_mutex_);
    std::vector<std::string> args;
    for (const auto& id : held_) {
      if (args.empty()) {
        args = {cfg.group, cfg.consumer};
      }
      args.push_back(id);
      if (args.size() == kPerCall + 2) {
        calls.emplace_back(std::vector<std::string>{cfg.stream}, std::move(args));
        args.clear();
      }
    }
    if (!args.empty()) {
      calls.emplace_back(std::vector<std::string>{cfg.stream}, std::move(args));
    }
  }
  if (calls.empty()) {
    return;
  }
  keep.run_many(client, calls);
}

void RedisBackend::feeder_loop() {
  pool_->wait_released();
  std::unique_ptr<StreamStore> store;
  config::RedisConfig current;
  bool own_pending_read = false;  // this consumer's entries left by an earlier run
  auto backoff = kFirstBackoff;
  auto next_claim = Clock::now();
  auto next_refresh = Clock::now() + kRefreshEvery;
  while (!pool_->stopping()) {
    pool_->sync_queue_settings();
    const auto settings = pool_->settings();
    const auto& cfg = settings->config;
    try {
      if (!store || current != *cfg.redis) {
        if (store && current.consumer != cfg.redis->consumer) {
          own_pending_read = false;  // a new name: its own pending entries first
        }
        store.reset();
        store = std::make_unique<StreamStore>(*cfg.redis, cfg.max_job_bytes, kRedisTimeout);
        store->ensure_group();
        leases_->set_redis(*cfg.redis);
        // The pauses kept in Redis hold before the first job is read (a restart keeps them).
        load_shared_state(store->client(), *cfg.redis, /*throttles=*/true);
        current = *cfg.redis;
      }
      const auto queued = pool_->queued_to_run();
      const std::size_t room = cfg.queue > queued ? cfg.queue - queued : 0;
      if (room == 0) {
        std::this_thread::sleep_for(milliseconds(5));
        continue;
      }
      std::vector<Entry> entries;
      // Entries delivered before (this consumer's left by a crash, or a silent consumer's) are
      // taken one at a time: a delivery counts as a crash towards max_crashes, so only the job
      // that was running may be charged with one. A page of them read at once would charge
      // every job of the page for each crash of the one poison job among them.
      if (!own_pending_read) {
        if (!pool_->idle()) {
          // Each alone: the earlier run's pending jobs run one after another, with nothing
          // else running, before any new job is read.
          std::this_thread::sleep_for(milliseconds(2));
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
    } catch (const RedisError& e) {
      store.reset();
      note_redis_down(e.what());
      pause(backoff, [&] { return pool_->stopping(); });
      backoff = std::min(backoff * 2, kMaxBackoff);
    } catch (const tbb::user_abort&) {
      break;  // stopping
    }
  }
}

void RedisBackend::load_shared_state(Client& client, const config::RedisConfig& cfg,
                                     bool throttles) {
  const auto pauses = read_pauses(client, cfg.stream);
  if (pauses.pool != pool_->paused() || pauses.keys != pool_->paused_keys()) {
    spdlog::warn("pool '{}': {} (as kept in redis)", name_,
                 pauses.pool           ? std::string("paused")
                 : pauses.keys.empty() ? std::string("not paused")
                                       : fmt::format("{} key{} paused", pauses.keys.size(),
                                                     pauses.keys.size() == 1 ? "" : "s"));
    pool_->set_paused(pauses.pool, pauses.keys);
  }
  if (throttles) {
    for (const auto& [key, left] : read_throttles(client, cfg.stream)) {
      pool_->throttled_elsewhere(key, left);
    }
  }
}

void RedisBackend::hear_keys_message(Client& client, const config::RedisConfig& cfg,
                                     std::string_view payload) {
  const auto m = parse_keys_message(payload);
  switch (m.kind) {
    case KeysMessage::Kind::kThrottle:
      pool_->throttled_elsewhere(m.key, m.for_);
      break;
    case KeysMessage::Kind::kPauses:
      load_shared_state(client, cfg, /*throttles=*/false);
      break;
    case KeysMessage::Kind::kOther:
      break;
  }
}

void RedisBackend::cancel_listener_loop() {
  std::unique_ptr<Subscriber> subscriber;
  std::unique_ptr<Client> reader;  // reads what a keys message says changed
  config::RedisConfig current;
  auto backoff = kFirstBackoff;
  auto next_keep = Clock::now();
  Script keep(kKeepScript);
  while (!pool_->stopping()) {
    const auto settings = pool_->settings();
    try {
      if (!subscriber || current != *settings->config.redis) {
        subscriber.reset();
        reader.reset();
        current = *settings->config.redis;
        subscriber = std::make_unique<Subscriber>(
            current, kRedisTimeout,
            std::vector<std::string>{std::string(kCancelChannel), keys_channel(current.stream)});
        reader = std::make_unique<Client>(current, kRedisTimeout);
        // Subscribed first, then read: a change from now on is heard; one missed while away is
        // read here.
        load_shared_state(*reader, current, /*throttles=*/true);
      }
      backoff = kFirstBackoff;
      if (Clock::now() >= next_keep) {
        keep_held(*reader, keep, current);
        next_keep = Clock::now() + renew_every(current);
      }
      const auto message = subscriber->next(kReadBlock);
      if (!message) {
        continue;
      }
      if (message->channel != kCancelChannel) {
        hear_keys_message(*reader, current, message->payload);
        continue;
      }
      const auto& id = message->payload;
      std::shared_ptr<RemoteBatch> b;
      {
        std::lock_guard lock(mutex_);
        if (auto it = batches_.find(id); it != batches_.end()) {
          b = it->second.batch;
        }
      }
      if (b && !b->cancelled()) {
        spdlog::warn("pool '{}': batch '{}' cancelled (from redis)", name_, id);
        b->cancel();
      }
    } catch (const RedisError& e) {
      subscriber.reset();
      note_redis_down(e.what());
      pause(backoff, [&] { return pool_->stopping(); });
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }
}

}  // namespace barista::redis
