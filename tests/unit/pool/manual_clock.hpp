#pragma once
// A clock for the engine's tests (daemon/pool/clock.hpp): time moves only when the test, a
// processor, or (with auto_advance) a sleeper moves it. Thread-safe.
#include "daemon/pool/clock.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace barista::test {

class ManualClock final : public pool::Clock {
 public:
  /// `auto_advance`: a sleep moves the time to its end at once, as if it had passed.
  explicit ManualClock(bool auto_advance = false) : auto_advance_(auto_advance) {}

  [[nodiscard]] time_point now() const override {
    return start_ + duration(offset_.load(std::memory_order_acquire));
  }

  bool sleep_until(time_point until, const std::function<bool()>& stop) const override {
    std::unique_lock lock(mutex_);
    if (until > now()) {
      sleeps_.push_back(until - now());
    }
    for (;;) {
      if (stop()) {
        return false;
      }
      if (now() >= until) {
        return true;
      }
      if (auto_advance_) {
        move_to(until);
        continue;
      }
      moved_.wait_for(lock, std::chrono::milliseconds(2));
    }
  }

  /// Moves the time on by `d`, waking the sleepers.
  void advance(duration d) {
    {
      std::lock_guard lock(mutex_);
      offset_.fetch_add(d.count(), std::memory_order_acq_rel);
    }
    moved_.notify_all();
  }

  /// How far the time has moved since the clock was made.
  [[nodiscard]] duration elapsed() const { return duration(offset_.load()); }
  /// How long each sleep that had to wait asked for, in order.
  [[nodiscard]] std::vector<duration> sleeps() const {
    std::lock_guard lock(mutex_);
    return sleeps_;
  }

 private:
  // mutex_ held.
  void move_to(time_point t) const {
    const auto target = (t - start_).count();
    auto current = offset_.load();
    while (current < target && !offset_.compare_exchange_weak(current, target)) {
    }
    moved_.notify_all();
  }

  const bool auto_advance_;
  const time_point start_ = std::chrono::steady_clock::now();
  mutable std::atomic<duration::rep> offset_{0};
  mutable std::mutex mutex_;
  mutable std::condition_variable moved_;
  mutable std::vector<duration> sleeps_;
};

}  // namespace barista::test
