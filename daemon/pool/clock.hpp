#pragma once

#include <chrono>
#include <functional>

namespace barista::pool {

/// The time a pool judges its jobs by: when an attempt starts and how long a job took, an
/// attempt's deadline (and the abandonment of a worker past it), the backoff before a retry,
/// and the rate. The daemon's pools use steady(); an engine test gives the pool a clock of its
/// own (tests/unit/pool/manual_clock.hpp) and so checks backoff, deadlines and rate in a time
/// it controls. The pool's housekeeping (its monitor's tick, its liveness for the watchdog, the
/// graceful-stop timeout) is about threads, not jobs, and runs in real time whatever the clock.
///
/// Its time points are steady_clock's: a processor gets its deadline in them (the SDK's
/// JobContext).
class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  virtual ~Clock() = default;

  [[nodiscard]] virtual time_point now() const = 0;
  /// Sleeps until now() reaches `until`; gives up, returning false, as soon as `stop()` is
  /// true (looked at at least every 5 ms of real time).
  virtual bool sleep_until(time_point until, const std::function<bool()>& stop) const = 0;

  /// The real clock: std::chrono::steady_clock.
  static const Clock& steady();
};

}  // namespace barista::pool
