#pragma once

/// @file context.hpp
/// What a running attempt can ask of the daemon: has it been cancelled, and by when must it end.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace barista {

/// The attempt's context. Built by the daemon for each attempt; plugins only read it.
class Context {
 public:
  using Clock = std::chrono::steady_clock;

  /// Built by the daemon. `cancel` is raised when the attempt must stop (its batch was cancelled,
  /// the daemon is stopping, or the attempt was abandoned); it must outlive the Context.
  Context(const std::atomic<bool>* cancel, Clock::time_point deadline) noexcept
      : cancel_(cancel), deadline_(deadline) {}

  /// True once the attempt should stop. Cheap: a relaxed atomic load.
  [[nodiscard]] bool cancelled() const noexcept {
    return cancel_ != nullptr && cancel_->load(std::memory_order_relaxed);
  }

  /// When the attempt must be done; `time_point::max()` when the pool has no `timeout`.
  [[nodiscard]] Clock::time_point deadline() const noexcept { return deadline_; }

  /// True once the deadline has passed.
  [[nodiscard]] bool expired() const noexcept { return Clock::now() >= deadline_; }

  /// Sleeps for `d`, cut short by cancellation or the deadline. Returns true when the full
  /// duration elapsed, false when it was cut short. Wakes at least every 5 ms to look.
  template <class Rep, class Period>
  bool sleep_for(std::chrono::duration<Rep, Period> d) const {
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(d);
    constexpr auto kSlice = std::chrono::milliseconds(5);
    for (;;) {
      if (cancelled()) {
        return false;
      }
      const auto now = Clock::now();
      if (now >= until) {
        return true;
      }
      if (now >= deadline_) {
        return false;
      }
      std::this_thread::sleep_for(
          std::min<Clock::duration>({until - now, deadline_ - now, kSlice}));
    }
  }

 private:
  const std::atomic<bool>* cancel_;
  Clock::time_point deadline_;
};

}  // namespace barista
