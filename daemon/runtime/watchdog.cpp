#include "daemon/runtime/watchdog.hpp"

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <exception>

#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

// The liveness check never lets an exception escape the watchdog thread: a check that throws
// counts as a failed one.
bool check(const Watchdog::Liveness& alive) {
  try {
    return alive();
  } catch (const std::exception& e) {
    spdlog::error("watchdog: liveness check threw: {}", e.what());
  } catch (...) {
    spdlog::error("watchdog: liveness check threw");
  }
  return false;
}

}  // namespace

Watchdog::Watchdog(Liveness alive) : alive_(std::move(alive)) {
  std::uint64_t usec = 0;
  // 0: keep WATCHDOG_USEC/WATCHDOG_PID, which systemd set for this process only
  // (sd_watchdog_enabled checks WATCHDOG_PID, so a plugin's child process that inherits them
  // ignores them).
  if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
    return;
  }
  // Half the interval, as sd_watchdog_enabled(3) recommends: one late ping is not yet fatal.
  interval_ = std::chrono::microseconds(usec / 2 > 0 ? usec / 2 : 1);
  spdlog::info("systemd watchdog: {}ms, keep-alive every {}ms", usec / 1000,
               interval_.count() / 1000);
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Watchdog::run() {
  bool healthy = true;
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    const bool alive = check(alive_);
    if (alive) {
      ::sd_notify(0, "WATCHDOG=1");
    }
    if (alive != healthy) {
      healthy = alive;
      if (alive) {
        spdlog::info("watchdog: liveness check passes again; keep-alives resumed");
      } else {
        spdlog::error(
            "watchdog: liveness check failed; keep-alives stop: systemd restarts "
            "baristad if none comes within {}ms of the last one",
            2 * interval_.count() / 1000);
      }
    }
    lock.lock();
    cv_.wait_for(lock, interval_, [this] { return stop_; });
  }
}

}  // namespace barista::runtime
