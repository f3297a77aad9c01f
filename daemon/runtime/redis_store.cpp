// The control requests' view of a pool shared through Redis (docs/cli.md#redis-pools): a batch
// is looked for in the pool's Redis server, and its record read (or cancelled) there. Each
// request talks to Redis on a connection of its own: handlers run on several threads, and a
// StreamStore is not thread-safe. A waiting client's connection is its watch's (wait_loop.hpp).
#include "daemon/control/replies.hpp"
#include "daemon/runtime/batch_store.hpp"
#include "daemon/runtime/redis_control.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

using control::error_reply;
using namespace redis_control;

// `status` probes every Redis pool: a silent server must not hold the answer up for long.
constexpr auto kStatusTimeout = std::chrono::milliseconds(500);
constexpr long long kLinesPerPage = 1000;

// A batch of a Redis pool, as read on the connection that found it.
struct RedisBatch {
  RedisPool pool;
  std::unique_ptr<redis::StreamStore> store;
  redis::BatchRecord record;
};

void cancel_in_redis(RedisBatch& b, const std::string& ref, control::Connection& conn) {
  switch (b.store->cancel(b.record.id)) {
    case redis::CancelResult::kUnknown:  // expired since it was looked up
      conn.write(error_reply(kUnknown, fmt::format("unknown batch '{}'", ref)));
      return;
    case redis::CancelResult::kNotRunning:
      // Already cancelled but still ending: cancelling again is no error, as for the spool.
      if (const auto now = b.store->batch(b.record.id); !now || now->ended()) {
        conn.write(error_reply(kUnknown, fmt::format("batch '{}' has already finished", ref)));
        return;
      }
      break;
    case redis::CancelResult::kCancelled:
      spdlog::warn("batch '{}' (pool '{}') cancelled on request", b.record.id, b.pool.name);
      break;
  }
  conn.write(control::ok_line());
}

redis::Reply lines_page(redis::StreamStore& store, const std::string& key, long long start) {
  return store.client().command(
      {"LRANGE", key, std::to_string(start), std::to_string(start + kLinesPerPage - 1)});
}

void results_from_redis(RedisBatch& b, bool summary, control::Connection& conn) {
  if (summary) {
    conn.write(control::ok_line() + redis::summary_json(b.record));
    return;
  }
  const auto key = redis::lines_key(b.record.id);
  // The first page before the answer: a Redis that fails now gets an error reply.
  auto page = lines_page(*b.store, key, 0);
  conn.write(control::ok_line());
  for (long long start = 0;;) {
    std::string out;
    for (const auto& line : page.elements()) {
      out += line.str();
      out += '\n';
    }
    if (!conn.write(out) || page.size() < static_cast<std::size_t>(kLinesPerPage)) {
      return;
    }
    start += kLinesPerPage;
    try {
      page = lines_page(*b.store, key, start);
    } catch (const redis::RedisError& e) {
      // The answer has begun: an error line would be taken for a result.
      spdlog::error("batch '{}' (pool '{}'): results cut short after {} lines: {}", b.record.id,
                    b.pool.name, start, redis_problem(b.pool.name, b.pool.redis(), e));
      return;
    }
  }
}

std::string progress_line(const redis::BatchRecord& r) {
  const auto& c = r.counts;
  return control::progress_line({{},
                                 {},
                                 c.done,
                                 r.total.value_or(c.done),
                                 c.failed + c.timeout + c.invalid,
                                 r.total.has_value()});
}

// While a Redis server does not answer, the clients waiting on its batches do not each wait out
// the timeout at every tick (they share one wait loop): one of them tries again after kAwayFor.
constexpr auto kAwayFor = std::chrono::seconds(1);

class AwayServers {
 public:
  [[nodiscard]] bool away(const std::string& pool) {
    std::lock_guard lock(mutex_);
    auto it = until_.find(pool);
    return it != until_.end() && std::chrono::steady_clock::now() < it->second;
  }
  void mark(const std::string& pool, bool away) {
    std::lock_guard lock(mutex_);
    if (away) {
      until_[pool] = std::chrono::steady_clock::now() + kAwayFor;
    } else {
      until_.erase(pool);
    }
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::chrono::steady_clock::time_point> until_;
};

AwayServers& away_servers() {
  static AwayServers servers;
  return servers;
}

// `barista wait` on a Redis batch: its record read again at each tick until it has ended.
class RedisWatch final : public control::Watch {
 public:
  RedisWatch(RedisBatch b, std::string ref) : b_(std::move(b)), ref_(std::move(ref)) {}

  Step step() override {
    if (!first_ && !away_servers().away(b_.pool.name)) {
      try {
        if (!b_.store) {
          b_.store = b_.pool.connect();
        }
        auto now = b_.store->batch(b_.record.id);
        if (!now) {
          return {error_reply(kUnknown, fmt::format("batch '{}' is no longer in Redis", ref_)),
                  true};
        }
        b_.record = std::move(*now);
        if (away_) {
          away_servers().mark(b_.pool.name, false);
        }
        away_ = false;
      } catch (const redis::RedisError& e) {
        // The batch goes on once Redis is back (nothing accepted is lost): keep waiting, showing
        // the last counts known.
        if (!away_) {
          spdlog::warn("waiting for batch '{}': {}", b_.record.id,
                       redis_problem(b_.pool.name, b_.pool.redis(), e));
        }
        away_ = true;
        away_servers().mark(b_.pool.name, true);
        b_.store.reset();
      }
    }
    first_ = false;
    if (b_.record.ended()) {
      auto summary = redis::summary_json(b_.record);
      summary.pop_back();  // its '\n'
      return {control::summary_line(summary), true};
    }
    return {progress_line(b_.record), false};
  }

 private:
  RedisBatch b_;
  std::string ref_;
  bool first_ = true;  // the record as found: sent without asking Redis again
  bool away_ = false;  // Redis could not be read: logged once, until it answers again
};

class RedisFound final : public FoundBatch {
 public:
  explicit RedisFound(RedisBatch b) : b_(std::move(b)) {}

  void cancel(const std::string& ref, control::Connection& conn) override {
    guarded(conn, [&] { cancel_in_redis(b_, ref, conn); });
  }
  void results(bool summary, control::Connection& conn) override {
    guarded(conn, [&] { results_from_redis(b_, summary, conn); });
  }
  std::unique_ptr<control::Watch> wait(const std::string& ref) override {
    return std::make_unique<RedisWatch>(std::move(b_), ref);
  }

 private:
  template <class Act>
  void guarded(control::Connection& conn, Act act) {
    try {
      act();
    } catch (const redis::RedisError& e) {
      conn.write(error_reply(kRefused, redis_problem(b_.pool.name, b_.pool.redis(), e)));
    }
  }

  RedisBatch b_;
};

class RedisStore final : public BatchStore {
 public:
  explicit RedisStore(std::shared_ptr<pool::Pool> pool)
      : pool_(std::move(pool)), redis_{pool_->name(), pool_->settings()} {}

  // A Redis pool's daemons read its stream in order: a weight does not reorder it.
  void submit(const std::filesystem::path& tmp, const std::string& name, std::uint64_t /*bytes*/,
              int /*weight*/, const std::function<bool()>& stopping,
              control::Connection& conn) override {
    submit_to_redis(redis_, tmp, name, stopping, conn);
  }

  std::unique_ptr<FoundBatch> find(const std::string& id) override {
    try {
      auto store = redis_.connect();
      auto record = store->batch(id);
      // Batch keys are per server and database, shared by the pools there: a record of another
      // pool (this daemon's, or other daemons') is not this pool's batch.
      if (!record || record->pool != redis_.name) {
        return nullptr;
      }
      return std::make_unique<RedisFound>(RedisBatch{redis_, std::move(store), std::move(*record)});
    } catch (const redis::RedisError& e) {
      throw StoreUnavailable(redis_problem(redis_.name, redis_.redis(), e));
    }
  }

  void describe(const pool::PoolStatus& s, control::PoolRow& row) override;

 private:
  std::shared_ptr<pool::Pool> pool_;  // kept while the request runs
  RedisPool redis_;
};

void RedisStore::describe(const pool::PoolStatus& s, control::PoolRow& row) {
  const auto& settings = redis_.settings;
  // The pool's own view first: while it says unavailable it takes no jobs, whatever a probe
  // finds. Otherwise a probe: the freshest word, and the stream's pending count.
  std::string state = s.redis;
  std::optional<std::uint64_t> pending;
  if (state != "unavailable") {
    try {
      redis::StreamStore store(*settings->config.redis, settings->config.max_job_bytes,
                               kStatusTimeout);
      pending = store.pending_count();
      if (state.empty()) {
        state = "connected";
      }
    } catch (const redis::RedisError&) {
      state = "unavailable";
    }
  }
  row.redis = state;
  row.pending = pending;
}

}  // namespace

std::unique_ptr<BatchStore> redis_store(std::shared_ptr<pool::Pool> pool) {
  return std::make_unique<RedisStore>(std::move(pool));
}

}  // namespace barista::runtime
