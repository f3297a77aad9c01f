#include "daemon/redis/key_leases.hpp"

#include "daemon/redis/script.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::redis {
namespace {

using std::chrono::microseconds;

constexpr auto kTimeout = std::chrono::milliseconds(2000);
// How long a daemon waits before asking again for a key whose slots the others hold: a slot
// another daemon gives back is seen within this.
constexpr auto kSlotPoll = std::chrono::milliseconds(100);
// A call Redis did not answer refuses the start for this long.
constexpr auto kDownWait = std::chrono::seconds(1);
constexpr std::size_t kIdleConnections = 8;

// Every script reads the server's clock, in µs: the daemons' own clocks never meet.
constexpr std::string_view kNow = R"(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
)";

// KEYS: slots, next, throttled. ARGV: member, max_in_flight, rate interval µs, lease µs, key.
// {1, 0}: taken. {0, µs}: not before then; {0, -1}: every slot is held.
const std::string kTakeScript = std::string(kNow) + R"(
local untl = redis.call('ZSCORE', KEYS[3], ARGV[5])
if untl and tonumber(untl) > now then return {0, tonumber(untl) - now} end
local max = tonumber(ARGV[2])
if max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= max then return {0, -1} end
end
local interval = tonumber(ARGV[3])
if interval > 0 then
  local nxt = tonumber(redis.call('GET', KEYS[2]) or '0')
  if nxt > now then return {0, nxt - now} end
  redis.call('SET', KEYS[2], now + interval, 'PX', math.ceil(interval / 1000) + 1000)
end
if max > 0 then
  local lease = tonumber(ARGV[4])
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000) * 2)
end
return {1, 0}
)";

// KEYS: next. ARGV: rate interval µs. Reserves the next start; returns how long until it (µs).
const std::string kPaceScript = std::string(kNow) + R"(
local interval = tonumber(ARGV[1])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
redis.call('SET', KEYS[1], slot + interval, 'PX', math.ceil((slot - now + interval) / 1000) + 1000)
return slot - now
)";

// KEYS: throttled. ARGV: key, µs, channel.
const std::string kThrottleScript = std::string(kNow) + R"(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local untl = now + tonumber(ARGV[2])
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not cur) or tonumber(cur) < untl then redis.call('ZADD', KEYS[1], untl, ARGV[1]) end
local left = redis.call('PTTL', KEYS[1])
local want = math.ceil(tonumber(ARGV[2]) / 1000) + 1000
if left < want then redis.call('PEXPIRE', KEYS[1], want) end
redis.call('PUBLISH', ARGV[3], 'throttle ' .. ARGV[2] .. ' ' .. ARGV[1])
return 1
)";

// KEYS: throttled. Returns {key, µs left, ...} for the throttles in force.
const std::string kThrottlesScript = std::string(kNow) + R"(
local out = {}
local all = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #all, 2 do
  out[#out + 1] = all[i]
  out[#out + 1] = tostring(tonumber(all[i + 1]) - now)
end
return out
)";

// KEYS: a slot set. ARGV: lease µs, member. Renews the member's lease if it still holds one.
const std::string kRenewScript = std::string(kNow) + R"(
local lease = tonumber(ARGV[1])
local n = redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000) * 2)
return n
)";

// KEYS: paused. ARGV: "pause" | "resume", member, channel. 1 when it changed.
const std::string kPauseScript = R"(
local n
if ARGV[1] == 'pause' then n = redis.call('SADD', KEYS[1], ARGV[2])
else n = redis.call('SREM', KEYS[1], ARGV[2]) end
if n > 0 then redis.call('PUBLISH', ARGV[3], 'pauses') end
return n
)";

std::string prefix(std::string_view stream) { return fmt::format("barista:keys:{}:", stream); }
std::string slots_key(std::string_view stream, std::string_view key) {
  return prefix(stream) + "slots:" + std::string(key);
}
std::string next_key(std::string_view stream, std::string_view key) {
  return prefix(stream) + "next:" + std::string(key);
}
std::string throttled_key(std::string_view stream) { return prefix(stream) + "throttled"; }
std::string paused_key(std::string_view stream) { return prefix(stream) + "paused"; }

microseconds rate_interval(const config::PerKey& limits) {
  if (!limits.rate || limits.rate->count == 0) {
    return microseconds(0);
  }
  return std::max(microseconds(1), std::chrono::duration_cast<microseconds>(limits.rate->per) /
                                       static_cast<microseconds::rep>(limits.rate->count));
}

long long to_number(const std::string& text) {
  long long n = 0;
  std::from_chars(text.data(), text.data() + text.size(), n);
  return n;
}

}  // namespace

std::chrono::milliseconds renew_every(const config::RedisConfig& cfg) {
  return std::clamp<std::chrono::milliseconds>(cfg.claim_after / 3, std::chrono::milliseconds(50),
                                               std::chrono::seconds(10));
}

std::string keys_channel(std::string_view stream) { return fmt::format("barista:keys:{}", stream); }

SharedPauses read_pauses(Client& client, std::string_view stream) {
  SharedPauses out;
  const auto members = client.command({"SMEMBERS", paused_key(stream)});
  for (const auto& m : members.elements()) {
    const auto& member = m.str();
    if (member == "pool") {
      out.pool = true;
    } else if (std::string_view(member).starts_with("key:")) {
      out.keys.insert(member.substr(4));
    }
  }
  return out;
}

bool change_pause(Client& client, std::string_view stream, bool pause, std::string_view key) {
  Script script(kPauseScript);
  const auto member = key.empty() ? std::string("pool") : "key:" + std::string(key);
  return script
             .run(client, {paused_key(stream)},
                  {pause ? "pause" : "resume", member, keys_channel(stream)})
             .integer() > 0;
}

std::vector<std::pair<std::string, microseconds>> read_throttles(Client& client,
                                                                 std::string_view stream) {
  Script script(kThrottlesScript);
  const auto reply = script.run(client, {throttled_key(stream)}, {});
  std::vector<std::pair<std::string, microseconds>> out;
  for (std::size_t i = 0; i + 1 < reply.size(); i += 2) {
    out.emplace_back(reply.at(i).str(), microseconds(to_number(reply.at(i + 1).str())));
  }
  return out;
}

KeysMessage parse_keys_message(std::string_view payload) {
  KeysMessage m;
  if (payload == "pauses") {
    m.kind = KeysMessage::Kind::kPauses;
    return m;
  }
  constexpr std::string_view kThrottle = "throttle ";
  if (!payload.starts_with(kThrottle)) {
    return m;
  }
  payload.remove_prefix(kThrottle.size());
  const auto space = payload.find(' ');
  if (space == std::string_view::npos) {
    return m;
  }
  long long us = 0;
  const auto [end, ec] = std::from_chars(payload.data(), payload.data() + space, us);
  if (ec != std::errc() || end != payload.data() + space || us < 0) {
    return m;
  }
  m.kind = KeysMessage::Kind::kThrottle;
  m.for_ = microseconds(us);
  m.key = std::string(payload.substr(space + 1));
  return m;
}

struct KeyLeases::Connection {
  explicit Connection(const config::RedisConfig& cfg) : client(cfg, kTimeout), made_for(cfg) {}
  Client client;
  config::RedisConfig made_for;
  Script take{kTakeScript};
  Script pace{kPaceScript};
  Script throttle{kThrottleScript};
  Script renew{kRenewScript};
};

KeyLeases::KeyLeases(std::string pool, config::RedisConfig redis)
    : pool_(std::move(pool)),
      member_suffix_(fmt::format("/{}/", ::getpid())),
      redis_(std::move(redis)) {}

void KeyLeases::set_redis(const config::RedisConfig& redis) {
  std::lock_guard lock(mutex_);
  redis_ = redis;
}

config::RedisConfig KeyLeases::redis() const {
  std::lock_guard lock(mutex_);
  return redis_;
}

KeyLeases::~KeyLeases() { stop(); }

template <class Fn>
auto KeyLeases::with_connection(Fn&& fn)
    -> std::optional<decltype(fn(std::declval<Connection&>()))> {
  const auto cfg = redis();
  std::unique_ptr<Connection> conn;
  {
    std::lock_guard lock(mutex_);
    while (!idle_.empty() && !conn) {
      conn = std::move(idle_.back());
      idle_.pop_back();
      if (conn->made_for != cfg) {
        conn.reset();  // made before a reload changed the settings
      }
    }
  }
  try {
    if (!conn) {
      conn = std::make_unique<Connection>(cfg);
    }
    auto out = fn(*conn);
    if (down_.exchange(false, std::memory_order_relaxed)) {
      spdlog::info("pool '{}': redis is back: per-key limits are counted there again", pool_);
    }
    std::lock_guard lock(mutex_);
    if (idle_.size() < kIdleConnections) {
      idle_.push_back(std::move(conn));
    }
    return out;
  } catch (const RedisError& e) {
    note_down(e.what());
    return std::nullopt;
  }
}

void KeyLeases::note_down(const std::string& why) {
  if (!down_.exchange(true, std::memory_order_relaxed)) {
    spdlog::error(
        "pool '{}': per-key limits cannot be counted in redis ({}): keys with limits "
        "start nothing until it answers",
        pool_, why);
  }
}

std::optional<KeyLeases::Clock::duration> KeyLeases::take(std::string_view key,
                                                          const config::PerKey& limits) {
  const auto cfg = redis();
  const auto member = cfg.consumer + member_suffix_ +
                      std::to_string(next_member_.fetch_add(1, std::memory_order_relaxed));
  const auto lease = std::chrono::duration_cast<microseconds>(cfg.claim_after);
  const auto reply = with_connection([&](Connection& c) {
    return c.take.run(
        c.client,
        {slots_key(cfg.stream, key), next_key(cfg.stream, key), throttled_key(cfg.stream)},
        {member, std::to_string(limits.max_in_flight),
         std::to_string(rate_interval(limits).count()),
         std::to_string(std::max<long long>(lease.count(), 1000)), std::string(key)});
  });
  if (!reply) {
    return kDownWait;
  }
  if (reply->at(0).integer() == 1) {
    if (limits.max_in_flight > 0) {
      std::lock_guard lock(mutex_);
      held_[std::string(key)].push_back(member);
    }
    return std::nullopt;
  }
  const auto wait = reply->at(1).integer();
  if (wait < 0) {
    return kSlotPoll;
  }
  return std::chrono::duration_cast<Clock::duration>(microseconds(wait));
}

void KeyLeases::give_back(std::string_view key) {
  std::string member;
  {
    std::lock_guard lock(mutex_);
    auto it = held_.find(std::string(key));
    if (it == held_.end()) {
      return;  // a start counted by the rate alone: nothing to give back
    }
    member = std::move(it->second.back());
    it->second.pop_back();
    if (it->second.empty()) {
      held_.erase(it);
    }
  }
  const auto cfg = redis();
  // Not given back (Redis away): its lease is no longer renewed and lapses after claim_after.
  with_connection([&](Connection& c) {
    return c.client.command({"ZREM", slots_key(cfg.stream, key), member}).integer();
  });
}

KeyLeases::Clock::duration KeyLeases::pace(std::string_view key, const config::PerKey& limits) {
  const auto cfg = redis();
  const auto reply = with_connection([&](Connection& c) {
    return c.pace.run(c.client, {next_key(cfg.stream, key)},
                      {std::to_string(rate_interval(limits).count())});
  });
  if (!reply) {
    return kDownWait;
  }
  return std::chrono::duration_cast<Clock::duration>(microseconds(reply->integer()));
}

void KeyLeases::throttle(std::string_view key, Clock::duration d) {
  const auto cfg = redis();
  const auto us = std::max<long long>(std::chrono::duration_cast<microseconds>(d).count(), 1);
  with_connection([&](Connection& c) {
    return c.throttle
        .run(c.client, {throttled_key(cfg.stream)},
             {std::string(key), std::to_string(us), keys_channel(cfg.stream)})
        .integer();
  });
}

void KeyLeases::start() {
  std::lock_guard lock(mutex_);
  if (!renewer_.joinable()) {
    stopping_ = false;
    renewer_ = std::thread([this] { renew_loop(); });
  }
}

void KeyLeases::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (renewer_.joinable()) {
    renewer_.join();
  }
}

std::size_t KeyLeases::held() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [key, members] : held_) {
    n += members.size();
  }
  return n;
}

void KeyLeases::renew_loop() {
  for (;;) {
    const auto cfg = redis();
    const auto every = renew_every(cfg);
    std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> calls;
    {
      std::unique_lock lock(mutex_);
      if (stop_cv_.wait_for(lock, every, [&] { return stopping_; })) {
        return;
      }
      const auto lease = std::to_string(std::max<long long>(
          std::chrono::duration_cast<microseconds>(cfg.claim_after).count(), 1000));
      for (const auto& [key, members] : held_) {
        for (const auto& member : members) {
          calls.push_back({{slots_key(cfg.stream, key)}, {lease, member}});
        }
      }
    }
    if (!calls.empty()) {
      with_connection([&](Connection& c) { return c.renew.run_many(c.client, calls).size(); });
    }
  }
}

}  // namespace barista::redis
