// `cancel`, `results`, `wait` and `status` for pools shared through Redis
// (docs/cli.md#redis-pools): a batch is looked for in the Redis servers of this daemon's Redis
// pools, and its record read (or cancelled) there. Each request talks to Redis on a connection of
// its own: a handler runs on a thread of its own, and a StreamStore is not thread-safe.
#include "daemon/runtime/redis_control.hpp"
#include "daemon/runtime/supervisor.hpp"

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
constexpr auto kProgressInterval = std::chrono::milliseconds(200);
constexpr long long kLinesPerPage = 1000;

bool valid_batch_id(std::string_view id) {
  return !id.empty() && id.find('/') == std::string_view::npos;
}

std::vector<RedisPool> redis_pools(const std::map<std::string, std::shared_ptr<pool::Pool>>& all) {
  std::vector<RedisPool> out;
  for (const auto& [name, p] : all) {
    if (auto settings = p->settings(); settings->config.redis) {
      out.push_back({name, std::move(settings)});
    }
  }
  return out;
}

// Batch keys are per server and database: pools there share one namespace of batch ids.
bool same_keys(const config::RedisConfig& a, const config::RedisConfig& b) {
  return a.host == b.host && a.port == b.port && a.db == b.db;
}

// A batch of a Redis pool, as read on the connection that found it.
struct RedisBatch {
  RedisPool pool;
  std::unique_ptr<redis::StreamStore> store;
  redis::BatchRecord record;
};

// A plain batch id looked for on every Redis server of this daemon's pools.
struct RedisLookup {
  std::vector<RedisBatch> found;
  std::vector<std::string> problems;  // servers that could not be asked
};

RedisLookup find_in_redis(const std::vector<RedisPool>& pools, const std::string& id) {
  RedisLookup out;
  std::vector<bool> asked(pools.size(), false);
  for (std::size_t i = 0; i < pools.size(); ++i) {
    if (asked[i]) {
      continue;
    }
    std::vector<const RedisPool*> sharing;  // the pools whose batch keys live on this server
    for (std::size_t j = i; j < pools.size(); ++j) {
      if (!asked[j] && same_keys(pools[i].redis(), pools[j].redis())) {
        asked[j] = true;
        sharing.push_back(&pools[j]);
      }
    }
    try {
      auto store = pools[i].connect();
      auto record = store->batch(id);
      // A record of a pool this daemon does not have belongs to other daemons.
      const auto mine = std::find_if(sharing.begin(), sharing.end(), [&](const RedisPool* p) {
        return record && p->name == record->pool;
      });
      if (mine != sharing.end()) {
        out.found.push_back({**mine, std::move(store), std::move(*record)});
      }
    } catch (const redis::RedisError& e) {
      out.problems.push_back(redis_problem(pools[i].name, pools[i].redis(), e));
    }
  }
  return out;
}

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
  conn.write(R"({"ok":true})"
             "\n");
}

redis::Reply lines_page(redis::StreamStore& store, const std::string& key, long long start) {
  return store.client().command(
      {"LRANGE", key, std::to_string(start), std::to_string(start + kLinesPerPage - 1)});
}

void results_from_redis(RedisBatch& b, bool summary, control::Connection& conn) {
  if (summary) {
    conn.write(R"({"ok":true})"
               "\n" +
               redis::summary_json(b.record));
    return;
  }
  const auto key = redis::lines_key(b.record.id);
  // The first page before the answer: a Redis that fails now gets an error reply.
  auto page = lines_page(*b.store, key, 0);
  conn.write(R"({"ok":true})"
             "\n");
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
  return fmt::format(R"({{"progress":{{"done":{},"total":{},"failed":{},"read_all":{}}}}})", c.done,
                     r.total.value_or(c.done), c.failed + c.timeout + c.invalid,
                     r.total ? "true" : "false") +
         "\n";
}

void wait_in_redis(RedisBatch& b, const std::string& ref, const std::function<bool()>& stopping,
                   control::Connection& conn) {
  bool away = false;  // Redis could not be read: logged once, until it answers again
  for (;;) {
    if (b.record.ended()) {
      auto summary = redis::summary_json(b.record);
      summary.pop_back();  // its '\n'
      conn.write(R"({"ok":true,"summary":)" + summary + "}\n");
      return;
    }
    if (!conn.write(progress_line(b.record)) || conn.client_gone()) {
      return;  // the client stopped waiting
    }
    if (stopping()) {
      conn.write(error_reply(kRefused, "baristad is stopping"));
      return;
    }
    std::this_thread::sleep_for(kProgressInterval);
    try {
      if (!b.store) {
        b.store = b.pool.connect();
      }
      auto now = b.store->batch(b.record.id);
      if (!now) {
        conn.write(error_reply(kUnknown, fmt::format("batch '{}' is no longer in Redis", ref)));
        return;
      }
      b.record = std::move(*now);
      away = false;
    } catch (const redis::RedisError& e) {
      // The batch goes on once Redis is back (nothing accepted is lost): keep waiting, showing
      // the last counts known.
      if (!away) {
        spdlog::warn("waiting for batch '{}': {}", b.record.id,
                     redis_problem(b.pool.name, b.pool.redis(), e));
      }
      away = true;
      b.store.reset();
    }
  }
}

}  // namespace

bool Supervisor::answer_from_redis(const control::Request& request,
                                   const std::vector<std::string>& spool_pools,
                                   control::Connection& conn) {
  const auto all = redis_pools(pools());
  if (all.empty()) {
    return false;
  }
  const std::string& ref = request.batch;
  std::optional<RedisBatch> target;
  if (const auto slash = ref.find('/'); slash != std::string::npos) {
    const auto name = ref.substr(0, slash);
    const auto id = ref.substr(slash + 1);
    const auto p =
        std::find_if(all.begin(), all.end(), [&](const RedisPool& rp) { return rp.name == name; });
    if (p == all.end()) {
      return false;  // a spool pool's batch, or no pool at all: the spool answers
    }
    try {
      auto store = p->connect();
      auto record = valid_batch_id(id) ? store->batch(id) : std::nullopt;
      if (!record || record->pool != name) {
        conn.write(error_reply(kUnknown, fmt::format("unknown batch '{}'", ref)));
        return true;
      }
      target = RedisBatch{*p, std::move(store), std::move(*record)};
    } catch (const redis::RedisError& e) {
      conn.write(error_reply(kRefused, redis_problem(p->name, p->redis(), e)));
      return true;
    }
  } else {
    auto lookup = find_in_redis(all, ref);
    if (lookup.found.empty()) {
      if (!spool_pools.empty() || lookup.problems.empty()) {
        return false;
      }
      conn.write(error_reply(kRefused, fmt::format("batch '{}' is in no spool, and Redis cannot "
                                                   "be asked: {}",
                                                   ref, fmt::join(lookup.problems, "; "))));
      return true;
    }
    std::vector<std::string> in = spool_pools;
    for (const auto& f : lookup.found) {
      in.push_back(f.pool.name);
    }
    if (in.size() > 1) {
      std::sort(in.begin(), in.end());
      conn.write(
          error_reply(kUnknown, fmt::format("batch '{}' is in more than one pool ({}): name it as "
                                            "POOL/{}",
                                            ref, fmt::join(in, ", "), ref)));
      return true;
    }
    target = std::move(lookup.found.front());
  }
  try {
    if (request.cmd == "cancel") {
      cancel_in_redis(*target, ref, conn);
    } else if (request.cmd == "results") {
      results_from_redis(*target, request.summary, conn);
    } else {
      const auto stopping = [this] { return control_->stopping(); };
      wait_in_redis(*target, ref, stopping, conn);
    }
  } catch (const redis::RedisError& e) {
    conn.write(error_reply(kRefused, redis_problem(target->pool.name, target->pool.redis(), e)));
  }
  return true;
}

std::string Supervisor::redis_status_json(const pool::Pool& p, const pool::PoolStatus& s) {
  const auto settings = p.settings();
  if (!settings->config.redis) {
    return {};
  }
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
  std::string out = R"(,"redis":)" + json_quoted(state);
  if (pending) {
    out += fmt::format(R"(,"pending":{})", *pending);
  }
  return out;
}

}  // namespace barista::runtime
