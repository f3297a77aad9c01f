#pragma once

#include "daemon/config/config.hpp"
#include "daemon/pool/clock.hpp"
#include "daemon/pool/job_chunk.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace barista::pool {

/// A key as `status` shows it: why its jobs wait.
struct KeyRow {
  std::string key;                      ///< "" for the pool's jobs without a key
  int in_flight = 0;                    ///< attempts of it running now
  std::uint64_t waiting = 0;            ///< its jobs set aside until it may start again
  bool paused = false;                  ///< `barista pause POOL --key K`
  bool at_limit = false;                ///< per_key.max_in_flight attempts run
  Clock::time_point throttled_until{};  ///< past: not throttled
};

/// Per-key state that several daemons share (a pool shared through Redis): `per_key` slots and
/// starts counted across all of them, and throttles told to the others. The gate calls it from
/// workers, outside its lock; each call may cross the network.
class SharedKeys {
 public:
  SharedKeys() = default;
  SharedKeys(const SharedKeys&) = delete;
  SharedKeys& operator=(const SharedKeys&) = delete;
  virtual ~SharedKeys() = default;

  /// Takes one of `key`'s slots (`limits.max_in_flight`) and its next start (`limits.rate`)
  /// across every daemon: nullopt when taken (give it back with give_back()); else how long to
  /// wait before asking again.
  virtual std::optional<Clock::duration> take(std::string_view key,
                                              const config::PerKey& limits) = 0;
  /// A slot take() gave has been used.
  virtual void give_back(std::string_view key) = 0;
  /// `limits.rate` for the retry of a job that holds its key's slot: how long until it may
  /// start (the start is reserved for it).
  virtual Clock::duration pace(std::string_view key, const config::PerKey& limits) = 0;
  /// Tells the other daemons that nothing of `key` (of the pool, for "") starts for `d`.
  virtual void throttle(std::string_view key, Clock::duration d) = 0;
};

/// The per-key part of a pool's scheduling: `per_key` limits (attempts of one key at once, and
/// their rate), throttles (a key, or the whole pool for a job without a key, starts nothing
/// until a time), and paused keys. A job whose key may not start now is set aside here, and
/// its worker goes on with other jobs: one busy key never holds up the others. The jobs set
/// aside are bounded (lookahead()): once it is full, the worker that meets another blocked job
/// waits for it, so memory stays bounded however many jobs wait behind a blocked key.
///
/// Thread-safe. While nothing limits, throttles or pauses, open() is true and the workers pass
/// it by without a lock.
class KeyGate {
 public:
  explicit KeyGate(const Clock& clock) : clock_(clock) {}

  /// The pool's `per_key` settings and how many jobs may be set aside (start, reload).
  void configure(const config::PerKey& per_key, std::size_t lookahead);
  /// Counts `per_key` slots and starts, and tells throttles, across daemons too (before the
  /// pool starts; null: this daemon alone).
  void share(std::shared_ptr<SharedKeys> shared);
  [[nodiscard]] std::size_t lookahead() const;
  /// Nothing limits, throttles or pauses: jobs start without asking.
  [[nodiscard]] bool open() const noexcept { return !active_.load(std::memory_order_acquire); }

  /// An attempt of `key` may start now: true, and its slot is taken (give it back with done()).
  /// False when it may not; `until` is then when it may be asked again (Clock::time_point::max:
  /// when a slot frees or a pause ends). With `behind_waiting`, a job of a key that has jobs
  /// set aside waits behind them; without (a worker that could not set its job aside), it
  /// starts as soon as the key may.
  bool try_start(std::string_view key, Clock::time_point& until, bool behind_waiting = true);
  /// per_key.rate for the retry of a job that holds its key's slot: when it may start (the
  /// slot is reserved for it).
  Clock::time_point pace(std::string_view key);
  /// The attempt that try_start() let start has ended.
  void done(std::string_view key);
  /// Nothing of `key` (of the whole pool, for "") starts before `until`; with `tell_others`,
  /// the daemons sharing the pool are told (a throttle heard from them is not told back).
  void throttle(std::string_view key, Clock::time_point until, bool tell_others = true);
  /// A throttle of `key` (of the pool, for ""): how many in a row it has had, this one included.
  int note_throttle(std::string_view key);
  /// An attempt of `key` ended without a throttle: the streak starts again.
  void clear_streak(std::string_view key);
  /// Sets the paused keys (the pool's own pause is the Pool's).
  void set_paused_keys(std::set<std::string> keys);
  [[nodiscard]] std::set<std::string> paused_keys() const;

  /// Sets a job aside until its key may start: its own one-job chunk (owned here until
  /// take_ready() or drain() hands it back). False when lookahead() jobs are set aside already.
  bool park(std::string_view key, JobChunk* one);
  /// A job set aside whose key may start now, its slot taken (chunk->admitted); null if none.
  JobChunk* take_ready();
  /// Some job set aside may start now (cheap: for idle workers).
  [[nodiscard]] bool has_ready() const;
  /// The jobs set aside.
  [[nodiscard]] std::uint64_t parked() const noexcept {
    return parked_.load(std::memory_order_relaxed);
  }
  /// When the job set aside longest was queued; nullopt when none is.
  [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> oldest_set_aside() const;
  /// Every job set aside, handed back (the pool stops: they run after the next start).
  std::vector<JobChunk*> drain();
  /// Sleeps until a slot frees, a pause or throttle changes, `until`, or `stop()`.
  void wait_change(Clock::time_point until, const std::function<bool()>& stop);

  /// The keys that hold jobs up now, most blocked first, at most `max`.
  [[nodiscard]] std::vector<KeyRow> blocked(std::size_t max) const;
  /// Keys throttled, paused or at their limit now.
  [[nodiscard]] std::size_t blocked_count() const;
  /// Forgets keys that limit nothing any more (called by the pool's monitor).
  void prune();
  /// The keys it keeps state for now.
  [[nodiscard]] std::size_t tracked() const;

 private:
  struct Key {
    int in_flight = 0;
    Clock::time_point next_start{};  // per_key.rate: the next start slot
    Clock::time_point throttled_until{};
    int streak = 0;                  // throttles in a row
    Clock::time_point held_until{};  // the shared slots were all taken: ask again then
    int shared_held = 0;             // slots of SharedKeys among in_flight
    std::deque<JobChunk*> waiting;   // set aside, oldest first
  };
  /// Why `k` may not start at `now`; nullopt when it may. Under mutex_.
  [[nodiscard]] std::optional<Clock::time_point> blocked_until(const std::string& name,
                                                               const Key& k,
                                                               Clock::time_point now) const;
  /// Counts an attempt of `k` as started at `now`: its slot, its per_key.rate. Under mutex_.
  void take_slot(const std::string& name, Key& k, Clock::time_point now);
  /// `k` holds jobs up: it may not start, or jobs of it are set aside. Under mutex_.
  [[nodiscard]] bool holds_up(const std::string& name, const Key& k, Clock::time_point now) const;
  /// `name`'s starts are counted across daemons too. Under mutex_.
  [[nodiscard]] bool shared_for(const std::string& name) const;
  /// After take_slot(): takes the shared slot too, outside the lock. False (and the local slot
  /// given back, the key held until it may ask again) when the others hold them all.
  bool take_shared(const std::string& name, Clock::time_point& until);
  void update_active();  // under mutex_
  void changed();        // wakes wait_change() and take_ready()'s fast path

  const Clock& clock_;
  std::atomic<bool> active_{false};
  std::atomic<std::uint64_t> parked_{0};
  std::atomic<std::int64_t> look_at_ns_{0};  // no job set aside may start before this

  mutable std::mutex mutex_;  // guards all below
  std::condition_variable changed_cv_;
  std::uint64_t changes_ = 0;
  config::PerKey per_key_;
  Clock::duration rate_interval_{};
  std::size_t lookahead_ = 1000;
  std::unordered_map<std::string, Key> keys_;
  Clock::time_point pool_throttled_until_{};  // a throttle of a job without a key
  std::set<std::string> paused_;
  std::shared_ptr<SharedKeys> shared_;  // set before the pool starts
};

}  // namespace barista::pool
