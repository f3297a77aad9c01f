#include "daemon/redis/recorder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace barista::redis {

const char* const kFinishLua = R"lua(
local function finish_if_complete(now, ttl)
  local f = redis.call('HMGET', KEYS[1], 'total', 'done', 'finished', 'state')
  if not f[1] or f[3] then
    return 0
  end
  if tonumber(f[2] or '0') < tonumber(f[1]) then
    return 0
  end
  redis.call('HSET', KEYS[1], 'finished', now)
  if f[4] == 'running' then
    redis.call('HSET', KEYS[1], 'state', 'done')
  end
  for i = 1, 3 do
    redis.call('EXPIRE', KEYS[i], ttl)
  end
  return 1
end
)lua";

namespace {

// KEYS: batch, results, lines, stream.
// ARGV: group, stream id ('' for none), job id, status, error, result line, cancel_all (1/0),
//       now, ttl, batch id, cancel channel.
// Returns {first, finished, cancelled, orphan}.
constexpr const char* kRecordLua = R"lua(
local function ack()
  if ARGV[2] ~= '' then
    redis.call('XACK', KEYS[4], ARGV[1], ARGV[2])
    redis.call('XDEL', KEYS[4], ARGV[2])
  end
end
-- No record: the batch expired after it finished (this is a late duplicate) or never existed.
-- Storing a result would leave keys behind that never expire.
if redis.call('EXISTS', KEYS[1]) == 0 then
  ack()
  return {0, 0, 0, 1}
end
local first = redis.call('HSETNX', KEYS[2], ARGV[3], '1')
if first == 1 then
  redis.call('RPUSH', KEYS[3], ARGV[6])
  redis.call('HINCRBY', KEYS[1], ARGV[4], 1)
  redis.call('HINCRBY', KEYS[1], 'done', 1)
  if ARGV[4] == 'failed' or ARGV[4] == 'timeout' or ARGV[4] == 'invalid' then
    if redis.call('HEXISTS', KEYS[1], 'first_error_id') == 0 then
      redis.call('HSET', KEYS[1], 'first_error_id', ARGV[3], 'first_error', ARGV[5])
    end
    local policy = ARGV[7] == '1' or redis.call('HGET', KEYS[1], 'cancel_all') == '1'
    if policy and redis.call('HGET', KEYS[1], 'state') == 'running' then
      redis.call('HSET', KEYS[1], 'state', 'cancelled')
      redis.call('PUBLISH', ARGV[11], ARGV[10])
    end
  end
end
ack()
local finished = finish_if_complete(ARGV[8], ARGV[9])
local cancelled = 0
if redis.call('HGET', KEYS[1], 'state') == 'cancelled' then
  cancelled = 1
end
return {first, finished, cancelled, 0}
)lua";

// KEYS: batch. ARGV: batch id, cancel channel. Returns 0 unknown, 1 cancelled, 2 not running.
constexpr const char* kCancelLua = R"lua(
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return 0
end
if state ~= 'running' then
  return 2
end
redis.call('HSET', KEYS[1], 'state', 'cancelled')
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
)lua";

bool flag(const Reply& reply, std::size_t i) { return reply.at(i).integer() != 0; }

}  // namespace

Recorder::Recorder(const config::RedisConfig& cfg, std::chrono::milliseconds timeout)
    : client_(cfg, timeout),
      stream_(cfg.stream),
      group_(cfg.group),
      record_script_(std::string(kFinishLua) + kRecordLua),
      cancel_script_(kCancelLua) {}

RecordResult Recorder::record(const Entry& entry, std::string_view status, std::string_view error,
                              std::string_view result_line, bool cancel_all,
                              std::string_view now_iso, std::chrono::seconds ttl) {
  return record_many({{&entry, status, error, result_line}}, cancel_all, now_iso, ttl).front();
}

std::vector<RecordResult> Recorder::record_many(const std::vector<Result>& results, bool cancel_all,
                                                std::string_view now_iso,
                                                std::chrono::seconds ttl) {
  // EXPIRE 0 would delete the batch at once; a second is the shortest life it can have.
  const auto seconds = std::to_string(std::max<std::chrono::seconds::rep>(1, ttl.count()));
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> calls;
  calls.reserve(results.size());
  for (const auto& r : results) {
    const Entry& entry = *r.entry;
    if (!is_status(r.status)) {
      throw std::invalid_argument(fmt::format("not a result status: '{}'", r.status));
    }
    if (entry.batch.empty()) {
      throw std::invalid_argument("a result needs the entry's batch (discard() an entry without)");
    }
    calls.push_back(
        {{batch_key(entry.batch), results_key(entry.batch), lines_key(entry.batch), stream_},
         {group_, entry.stream_id, entry.id, std::string(r.status), std::string(r.error),
          std::string(r.result_line), cancel_all ? "1" : "0", std::string(now_iso), seconds,
          entry.batch, std::string(kCancelChannel)}});
  }
  const auto replies = record_script_.run_many(client_, calls);
  std::vector<RecordResult> out;
  out.reserve(replies.size());
  for (const auto& reply : replies) {
    RecordResult r;
    r.first = flag(reply, 0);
    r.finished = flag(reply, 1);
    r.cancelled = flag(reply, 2);
    r.orphan = flag(reply, 3);
    out.push_back(r);
  }
  return out;
}

void Recorder::discard(const Entry& entry) {
  client_.pipeline(
      {{"XACK", stream_, group_, entry.stream_id}, {"XDEL", stream_, entry.stream_id}});
}

bool Recorder::batch_cancelled(std::string_view batch) {
  return client_.command({"HGET", batch_key(batch), "state"}).str() == "cancelled";
}

CancelResult Recorder::cancel(std::string_view batch) {
  const Reply reply = cancel_script_.run(client_, {batch_key(batch)},
                                         {std::string(batch), std::string(kCancelChannel)});
  switch (reply.integer()) {
    case 1:
      return CancelResult::kCancelled;
    case 2:
      return CancelResult::kNotRunning;
    default:
      return CancelResult::kUnknown;
  }
}

}  // namespace barista::redis
