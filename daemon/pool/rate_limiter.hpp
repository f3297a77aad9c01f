#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

namespace barista::pool {

/// Caps attempt starts at `count` per `per`: a token bucket holding one token, refilled every
/// per/count, so starts are evenly spaced (1,000 attempts at 500/s take at least 1.998 s).
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimiter(std::uint64_t count, std::chrono::milliseconds per);

  /// Waits for the next start slot. Gives up and returns false as soon as `stop()` is true
  /// (checked at least every 5 ms).
  bool acquire(const std::function<bool()>& stop);

 private:
  std::mutex mutex_;
  Clock::duration interval_;
  Clock::time_point next_;
};

}  // namespace barista::pool
