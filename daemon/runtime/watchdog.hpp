#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace barista::runtime {

/// Keeps systemd's service watchdog (`WatchdogSec=`) fed while the daemon is healthy.
///
/// When systemd asked this process for keep-alives (`WATCHDOG_USEC`, and `WATCHDOG_PID` naming
/// this process if set), a thread sends `WATCHDOG=1` every half of that interval, but only while
/// `alive()` returns true. A daemon whose check fails stops pinging, so systemd kills and
/// restarts it once the interval passes without a ping; a check that passes again before then
/// resumes the pings and nothing happens. Without `WATCHDOG_USEC` the class does nothing.
class Watchdog {
 public:
  /// Answers "is the daemon making progress?". Called from the watchdog thread, once per ping;
  /// it must be thread-safe and quick (it is on the path of every keep-alive).
  using Liveness = std::function<bool()>;

  /// Starts the thread when systemd enabled the watchdog for this process.
  explicit Watchdog(Liveness alive);
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  /// Stops the thread at once (it does not wait for the next ping).
  ~Watchdog();

  /// True when systemd asked for keep-alives and the thread runs.
  [[nodiscard]] bool enabled() const noexcept { return interval_.count() > 0; }
  /// The time between two pings: half of `WATCHDOG_USEC`; zero when disabled.
  [[nodiscard]] std::chrono::microseconds interval() const noexcept { return interval_; }

 private:
  void run();

  Liveness alive_;
  std::chrono::microseconds interval_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace barista::runtime
