#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace barista::pool {

/// Where threads that wait on the pool's queue sleep: idle workers until a chunk is pushed (or
/// they may read), a pusher until a chunk is popped from a full queue. The queue's own blocking
/// pop and push spin before they sleep (pause instructions, then up to 32 sched_yield calls);
/// with the readers and the workers sharing two cores, that spinning took CPU time from the very
/// threads it waited for. Here a waiter tries once more under the lock and sleeps at once; the
/// other side takes the (rarely contended) lock once per chunk and signals only when someone waits.
///
///   waiter:  wait_until(try_to_get_it)      other side:  make it available; notify()
class Sleepers {
 public:
  /// Sleeps until `ready()` (called under the lock, so it must not block) returns true, until
  /// wake_all() is called, or for at most `limit`. Returns what `ready()` returned last.
  template <class Ready>
  bool wait_until(Ready ready, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    const auto seen = wakeups_;
    ++waiting_;
    bool got = false;
    cv_.wait_for(lock, limit, [&] {
      got = ready();
      return got || wakeups_ != seen;
    });
    --waiting_;
    return got;
  }

  /// After making something available: wakes one waiter, if any. A waiter that looked before
  /// the thing was there holds the lock until it sleeps, so it is counted here and woken.
  void notify() {
    bool someone = false;
    {
      std::lock_guard lock(mutex_);
      someone = waiting_ > 0;
    }
    if (someone) {
      cv_.notify_one();
    }
  }

  /// Wakes every waiter, whether or not anything is ready (to look at stopping or retiring).
  void wake_all() {
    {
      std::lock_guard lock(mutex_);
      ++wakeups_;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int waiting_ = 0;            // guarded by mutex_
  std::uint64_t wakeups_ = 0;  // guarded by mutex_
};

}  // namespace barista::pool
