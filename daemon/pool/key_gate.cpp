#include "daemon/pool/key_gate.hpp"

#include <algorithm>

namespace barista::pool {
namespace {

constexpr auto kNever = Clock::time_point::max();

}  // namespace

void KeyGate::configure(const config::PerKey& per_key, std::size_t lookahead) {
  {
    std::lock_guard lock(mutex_);
    per_key_ = per_key;
    rate_interval_ =
        per_key.rate
            ? std::chrono::duration_cast<Clock::duration>(per_key.rate->per) /
                  static_cast<Clock::duration::rep>(std::max<std::uint64_t>(per_key.rate->count, 1))
            : Clock::duration{};
    lookahead_ = std::max<std::size_t>(lookahead, 1);
    update_active();
  }
  changed();
}

void KeyGate::share(std::shared_ptr<SharedKeys> shared) {
  std::lock_guard lock(mutex_);
  shared_ = std::move(shared);
}

bool KeyGate::shared_for(const std::string& name) const {
  return shared_ && !name.empty() && (per_key_.max_in_flight > 0 || per_key_.rate.has_value());
}

bool KeyGate::take_shared(const std::string& name, Clock::time_point& until) {
  config::PerKey limits;
  {
    std::lock_guard lock(mutex_);
    limits = per_key_;
  }
  const auto wait = shared_->take(name, limits);
  const auto now = clock_.now();
  std::lock_guard lock(mutex_);
  auto& k = keys_[name];  // kept: its in_flight counts the slot taken before
  if (!wait) {
    ++k.shared_held;
    return true;
  }
  --k.in_flight;
  k.held_until = std::max(k.held_until, now + *wait);
  until = k.held_until;
  // A worker that looked at the key's jobs set aside while this slot was counted saw it at its
  // limit (not before a slot frees): they are to be looked at again.
  look_at_ns_.store(0, std::memory_order_release);
  return false;
}

std::size_t KeyGate::lookahead() const {
  std::lock_guard lock(mutex_);
  return lookahead_;
}

std::optional<Clock::time_point> KeyGate::blocked_until(const std::string& name, const Key& k,
                                                        Clock::time_point now) const {
  if (now < pool_throttled_until_) {
    return pool_throttled_until_;
  }
  if (!name.empty() && paused_.contains(name)) {
    return kNever;
  }
  if (now < k.throttled_until) {
    return k.throttled_until;
  }
  if (now < k.held_until) {
    return k.held_until;
  }
  if (name.empty()) {
    return std::nullopt;  // a job without a key is limited pool-wide only
  }
  if (per_key_.max_in_flight > 0 && k.in_flight >= per_key_.max_in_flight) {
    return kNever;
  }
  if (per_key_.rate && now < k.next_start) {
    return k.next_start;
  }
  return std::nullopt;
}

bool KeyGate::try_start(std::string_view key, Clock::time_point& until, bool behind_waiting) {
  const auto now = clock_.now();
  std::string name(key);
  {
    std::lock_guard lock(mutex_);
    auto& k = keys_[name];
    // Jobs set aside earlier go first: a new job of the key waits behind them.
    if (auto blocked = blocked_until(name, k, now);
        blocked || (behind_waiting && !k.waiting.empty())) {
      until = blocked.value_or(now);
      return false;
    }
    take_slot(name, k, now);
    if (!shared_for(name)) {
      return true;
    }
  }
  return take_shared(name, until);
}

void KeyGate::take_slot(const std::string& name, Key& k, Clock::time_point now) {
  ++k.in_flight;
  // Shared starts are counted by SharedKeys::take() alone: the daemons share one rate.
  if (per_key_.rate && !name.empty() && !shared_) {
    k.next_start = std::max(k.next_start, now) + rate_interval_;
  }
}

bool KeyGate::holds_up(const std::string& name, const Key& k, Clock::time_point now) const {
  return blocked_until(name, k, now).has_value() || !k.waiting.empty();
}

Clock::time_point KeyGate::pace(std::string_view key) {
  const auto now = clock_.now();
  std::unique_lock lock(mutex_);
  if (shared_for(std::string(key))) {
    const auto limits = per_key_;
    lock.unlock();
    return now + shared_->pace(key, limits);
  }
  auto& k = keys_[std::string(key)];
  const auto slot = std::max(k.next_start, now);
  k.next_start = slot + rate_interval_;
  return slot;
}

void KeyGate::done(std::string_view key) {
  bool wake = false;
  bool give_back = false;
  {
    std::lock_guard lock(mutex_);
    auto it = keys_.find(std::string(key));
    if (it == keys_.end()) {
      return;
    }
    --it->second.in_flight;
    if (it->second.shared_held > 0) {
      --it->second.shared_held;
      give_back = true;
    }
    wake = !it->second.waiting.empty();
  }
  if (give_back) {
    shared_->give_back(key);
  }
  if (wake) {
    look_at_ns_.store(0, std::memory_order_release);
    changed();
  }
}

void KeyGate::throttle(std::string_view key, Clock::time_point until, bool tell_others) {
  std::shared_ptr<SharedKeys> shared;
  {
    std::lock_guard lock(mutex_);
    if (tell_others) {
      shared = shared_;
    }
    if (key.empty()) {
      pool_throttled_until_ = std::max(pool_throttled_until_, until);
    } else {
      auto& k = keys_[std::string(key)];
      k.throttled_until = std::max(k.throttled_until, until);
    }
    active_.store(true, std::memory_order_release);
  }
  changed();
  if (shared) {
    shared->throttle(key, std::max(Clock::duration{}, until - clock_.now()));
  }
}

int KeyGate::note_throttle(std::string_view key) {
  std::lock_guard lock(mutex_);
  return ++keys_[std::string(key)].streak;
}

void KeyGate::clear_streak(std::string_view key) {
  std::lock_guard lock(mutex_);
  if (auto it = keys_.find(std::string(key)); it != keys_.end()) {
    it->second.streak = 0;
  }
}

std::set<std::string> KeyGate::paused_keys() const {
  std::lock_guard lock(mutex_);
  return paused_;
}

void KeyGate::set_paused_keys(std::set<std::string> keys) {
  {
    std::lock_guard lock(mutex_);
    paused_ = std::move(keys);
    update_active();
  }
  look_at_ns_.store(0, std::memory_order_release);
  changed();
}

bool KeyGate::park(std::string_view key, JobChunk* one) {
  {
    std::lock_guard lock(mutex_);
    if (parked_.load(std::memory_order_relaxed) >= lookahead_) {
      return false;
    }
    one->set_aside = true;
    keys_[std::string(key)].waiting.push_back(one);
    parked_.fetch_add(1, std::memory_order_relaxed);
  }
  look_at_ns_.store(0, std::memory_order_release);
  return true;
}

bool KeyGate::has_ready() const {
  return parked_.load(std::memory_order_relaxed) > 0 &&
         clock_.now().time_since_epoch().count() >= look_at_ns_.load(std::memory_order_acquire);
}

JobChunk* KeyGate::take_ready() {
  // A job whose key the other daemons hold all slots of goes back, and the next is looked at:
  // a few times, then the worker goes on with its queue.
  constexpr int kTries = 4;
  for (int tries = 0; tries < kTries && has_ready(); ++tries) {
    std::string name;
    JobChunk* one = nullptr;
    {
      const auto now = clock_.now();
      std::lock_guard lock(mutex_);
      auto next_look = kNever;
      for (auto& [key, k] : keys_) {
        if (k.waiting.empty()) {
          continue;
        }
        if (auto blocked = blocked_until(key, k, now)) {
          next_look = std::min(next_look, *blocked);
          continue;
        }
        one = k.waiting.front();
        k.waiting.pop_front();
        parked_.fetch_sub(1, std::memory_order_relaxed);
        take_slot(key, k, now);
        if (!shared_for(key)) {
          one->admitted = true;
          return one;
        }
        name = key;
        break;
      }
      if (one == nullptr) {
        // Nothing may start: no need to look again before the first block ends (or a slot
        // frees).
        look_at_ns_.store(next_look.time_since_epoch().count(), std::memory_order_release);
        return nullptr;
      }
    }
    auto until = kNever;
    if (take_shared(name, until)) {
      one->admitted = true;
      return one;
    }
    std::lock_guard lock(mutex_);
    keys_[name].waiting.push_front(one);
    parked_.fetch_add(1, std::memory_order_relaxed);
    look_at_ns_.store(0, std::memory_order_release);  // as above: back, it is to be looked at
  }
  return nullptr;
}

std::optional<std::chrono::steady_clock::time_point> KeyGate::oldest_set_aside() const {
  if (parked() == 0) {
    return std::nullopt;
  }
  std::optional<std::chrono::steady_clock::time_point> oldest;
  std::lock_guard lock(mutex_);
  for (const auto& [name, k] : keys_) {
    if (!k.waiting.empty() && (!oldest || k.waiting.front()->queued_at < *oldest)) {
      oldest = k.waiting.front()->queued_at;
    }
  }
  return oldest;
}

std::vector<JobChunk*> KeyGate::drain() {
  std::vector<JobChunk*> out;
  std::lock_guard lock(mutex_);
  for (auto& [name, k] : keys_) {
    out.insert(out.end(), k.waiting.begin(), k.waiting.end());
    k.waiting.clear();
  }
  parked_.store(0, std::memory_order_relaxed);
  return out;
}

void KeyGate::wait_change(Clock::time_point until, const std::function<bool()>& stop) {
  // Real time bounds each sleep: a test's clock moves on its own, and stop() is looked at.
  constexpr auto kSlice = std::chrono::milliseconds(20);
  std::unique_lock lock(mutex_);
  const auto seen = changes_;
  const auto now = clock_.now();
  const auto slice =
      until <= now ? Clock::duration{} : std::min<Clock::duration>(until - now, kSlice);
  changed_cv_.wait_for(lock, slice, [&] { return changes_ != seen || stop(); });
}

void KeyGate::changed() {
  {
    std::lock_guard lock(mutex_);
    ++changes_;
  }
  changed_cv_.notify_all();
}

void KeyGate::update_active() {
  const auto now = clock_.now();
  bool throttled = now < pool_throttled_until_;
  for (const auto& [name, k] : keys_) {
    throttled = throttled || now < k.throttled_until;
  }
  active_.store(per_key_.max_in_flight > 0 || per_key_.rate.has_value() || !paused_.empty() ||
                    throttled || parked_.load(std::memory_order_relaxed) > 0,
                std::memory_order_release);
}

void KeyGate::prune() {
  const auto now = clock_.now();
  std::lock_guard lock(mutex_);
  std::erase_if(keys_, [&](const auto& entry) {
    const auto& k = entry.second;
    return k.in_flight == 0 && k.waiting.empty() && k.throttled_until <= now &&
           k.next_start <= now && k.held_until <= now && k.streak == 0;
  });
  // In flight on an open gate: a job that started without asking never says done(), so the
  // gate only closes again (active) when it has nothing of its own left to track.
  if (keys_.empty()) {
    update_active();
  }
}

std::size_t KeyGate::tracked() const {
  std::lock_guard lock(mutex_);
  return keys_.size();
}

std::vector<KeyRow> KeyGate::blocked(std::size_t max) const {
  const auto now = clock_.now();
  std::vector<KeyRow> rows;
  std::lock_guard lock(mutex_);
  auto row_of = [&](const std::string& name, const Key& k) {
    KeyRow row;
    row.key = name;
    row.in_flight = k.in_flight;
    row.waiting = k.waiting.size();
    row.paused = paused_.contains(name);
    row.at_limit =
        (per_key_.max_in_flight > 0 && k.in_flight >= per_key_.max_in_flight) || now < k.held_until;
    row.throttled_until = k.throttled_until > now ? k.throttled_until : Clock::time_point{};
    return row;
  };
  for (const auto& [name, k] : keys_) {
    if (holds_up(name, k, now)) {
      rows.push_back(row_of(name, k));
    }
  }
  for (const auto& name : paused_) {
    if (!keys_.contains(name)) {
      rows.push_back(row_of(name, Key{}));
    }
  }
  if (now < pool_throttled_until_) {
    KeyRow row;
    row.throttled_until = pool_throttled_until_;
    rows.push_back(row);
  }
  // Most blocked first: the most jobs waiting, then the longest throttle.
  std::sort(rows.begin(), rows.end(), [](const KeyRow& a, const KeyRow& b) {
    if (a.waiting != b.waiting) {
      return a.waiting > b.waiting;
    }
    return a.throttled_until > b.throttled_until;
  });
  if (rows.size() > max) {
    rows.resize(max);
  }
  return rows;
}

std::size_t KeyGate::blocked_count() const {
  const auto now = clock_.now();
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [name, k] : keys_) {
    n += holds_up(name, k, now) ? 1 : 0;
  }
  return n;
}

}  // namespace barista::pool
