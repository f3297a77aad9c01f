#pragma once

// The per-key scheduling state of a pool shared through Redis (docs/several-machines.md#keys):
// what makes `per_key` limits, throttles and pauses hold across every daemon of the pool.
//
// Data model (STREAM is the pool's stream, KEY a job's key; times are the server's, in µs, read
// with TIME inside each script so that the daemons' clocks never matter)
// ----------
// barista:keys:STREAM:slots:KEY (sorted set)  one member per running attempt of KEY on any
//     daemon, "CONSUMER/PID/N", scored by when its lease ends. A daemon renews the leases of its
//     own slots every claim_after / 3; the slots of a daemon that died lapse within claim_after
//     and are dropped by the next take.
// barista:keys:STREAM:next:KEY (string)       per_key.rate: the earliest start of KEY's next
//     attempt.
// barista:keys:STREAM:throttled (sorted set)  KEY ("" for the pool's jobs without a key),
//     scored by when its throttle ends.
// barista:keys:STREAM:paused (set)            "pool" while the pool is paused, "key:KEY" for
//     each paused key.
// Channel barista:keys:STREAM: "throttle US KEY" when a daemon throttles KEY for US µs, and
//     "pauses" when the pauses change. Every daemon of the pool subscribes, and reads the
//     pauses and throttles again whenever it (re)subscribes, so a message missed while it was
//     away is not missed for long.

#include "daemon/config/config.hpp"
#include "daemon/pool/key_gate.hpp"
#include "daemon/redis/redis_client.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace barista::redis {

/// How often a live daemon renews what it holds in Redis, so that only a silent one loses it
/// after claim_after: its per-key slots' leases, and the idle time of its pending stream
/// entries. claim_after / 3, from 50 ms to 10 s.
std::chrono::milliseconds renew_every(const config::RedisConfig& cfg);

/// The channel on which a pool's daemons hear each other's throttles and pause changes.
std::string keys_channel(std::string_view stream);

/// A pool's pauses as kept in Redis.
struct SharedPauses {
  bool pool = false;
  std::set<std::string> keys;
};
/// Reads them. Throws RedisError.
SharedPauses read_pauses(Client& client, std::string_view stream);
/// Pauses (or resumes) the pool, or `key` of it when not empty, and tells the pool's daemons.
/// False when nothing changed (it was so already). Throws RedisError.
bool change_pause(Client& client, std::string_view stream, bool pause, std::string_view key);
/// The throttles in force now: key ("" for the pool) and how long each has left.
std::vector<std::pair<std::string, std::chrono::microseconds>> read_throttles(
    Client& client, std::string_view stream);

/// A message heard on keys_channel().
struct KeysMessage {
  enum class Kind { kThrottle, kPauses, kOther };
  Kind kind = Kind::kOther;
  std::string key;                   ///< kThrottle
  std::chrono::microseconds for_{};  ///< kThrottle
};
KeysMessage parse_keys_message(std::string_view payload);

/// `per_key` slots and starts counted across every daemon of a pool, and throttles told to the
/// others (see the data model above). Thread-safe: workers call it through their pool's gate,
/// each call on a connection of a small set kept here; one thread renews this daemon's leases.
/// A call that cannot reach Redis refuses the start (asked again after a second) rather than
/// let a key go past its limit.
class KeyLeases final : public pool::SharedKeys {
 public:
  using Clock = pool::Clock;

  /// `redis`: the pool's `redis:` settings.
  KeyLeases(std::string pool, config::RedisConfig redis);
  ~KeyLeases() override;

  std::optional<Clock::duration> take(std::string_view key, const config::PerKey& limits) override;
  void give_back(std::string_view key) override;
  Clock::duration pace(std::string_view key, const config::PerKey& limits) override;
  void throttle(std::string_view key, Clock::duration d) override;

  /// The settings after a reload changed them.
  void set_redis(const config::RedisConfig& redis);
  /// Starts renewing this daemon's leases; stop() ends it (the slots still held lapse).
  void start();
  void stop();

  /// This daemon's slots now, over all keys.
  [[nodiscard]] std::size_t held() const;

 private:
  struct Connection;
  /// Runs `fn` on a connection (made when none is free); nullopt, logged, when Redis fails.
  template <class Fn>
  auto with_connection(Fn&& fn) -> std::optional<decltype(fn(std::declval<Connection&>()))>;
  [[nodiscard]] config::RedisConfig redis() const;
  void renew_loop();
  void note_down(const std::string& why);

  const std::string pool_;
  const std::string member_suffix_;  // "/PID/": a member is CONSUMER/PID/N
  std::atomic<std::uint64_t> next_member_{0};
  std::atomic<bool> down_{false};

  mutable std::mutex mutex_;  // guards all below
  config::RedisConfig redis_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::unordered_map<std::string, std::vector<std::string>> held_;  // key -> its members
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread renewer_;
};

}  // namespace barista::redis
