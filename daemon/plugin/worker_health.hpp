#pragma once

// What the engine and the runtime share with a pool's worker processes (isolation: process,
// plugin: exec; daemon/isolation/): the exception by which a processor says its worker process
// crashed, and the pool's record of restarts and of workers that die at start.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

namespace barista::plugin {

/// Thrown by a processor whose worker process died, hung past its deadline or broke the
/// protocol while it ran the job: the engine charges the job a crash (max_crashes) rather than
/// a failure, and runs it again.
class WorkerCrash : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A pool's worker processes, as `status` and the metrics see them. Thread-safe.
class WorkerHealth {
 public:
  using Clock = std::chrono::steady_clock;

  /// `give_up_after`: how long workers may keep dying at start before they are no longer
  /// started (a minute; shorter in tests).
  explicit WorkerHealth(Clock::duration give_up_after = std::chrono::minutes(1))
      : give_up_after_(give_up_after) {}

  /// A worker process was started again (after a crash or an exit).
  void note_restart() { restarts_.fetch_add(1, std::memory_order_relaxed); }
  /// A worker process died before it answered a job. True when this makes the pool give up.
  bool note_start_failure(const std::string& why, Clock::time_point now = Clock::now()) {
    std::lock_guard lock(mutex_);
    reason_ = why;
    failing_.store(true, std::memory_order_relaxed);
    if (!failing_since_) {
      failing_since_ = now;
    }
    if (!given_up_.load(std::memory_order_relaxed) && now - *failing_since_ >= give_up_after_) {
      given_up_.store(true, std::memory_order_release);
      return true;
    }
    return false;
  }
  /// A worker process answered a job: starts are fine again.
  void note_answer() {
    if (failing_.load(std::memory_order_relaxed)) {
      std::lock_guard lock(mutex_);
      failing_since_.reset();
      failing_.store(false, std::memory_order_relaxed);
    }
  }
  /// Workers are to be started again (a reload, `barista resume POOL`).
  void try_again() {
    std::lock_guard lock(mutex_);
    failing_since_.reset();
    given_up_.store(false, std::memory_order_release);
  }

  [[nodiscard]] std::uint64_t restarts() const noexcept {
    return restarts_.load(std::memory_order_relaxed);
  }
  /// True once workers died at start for give_up_after: none is started until try_again().
  [[nodiscard]] bool given_up() const noexcept { return given_up_.load(std::memory_order_acquire); }
  /// Why the last one died at start.
  [[nodiscard]] std::string reason() const {
    std::lock_guard lock(mutex_);
    return reason_;
  }

 private:
  const Clock::duration give_up_after_;
  std::atomic<std::uint64_t> restarts_{0};
  std::atomic<bool> given_up_{false};
  std::atomic<bool> failing_{false};  // failing_since_ is set: note_answer() has work
  mutable std::mutex mutex_;          // guards reason_ and failing_since_
  std::string reason_;
  std::optional<Clock::time_point> failing_since_;
};

}  // namespace barista::plugin
