#pragma once

#include "daemon/pool/clock.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

namespace barista::pool {

/// Caps attempt starts at `count` per `per`: a token bucket holding one token, refilled every
/// per/count, so starts are evenly spaced (1,000 attempts at 500/s take at least 1.998 s), in
/// the time of `clock`.
class RateLimiter {
 public:
  RateLimiter(std::uint64_t count, std::chrono::milliseconds per,
              const Clock& clock = Clock::steady());

  /// Waits for the next start slot. Gives up and returns false as soon as `stop()` is true
  /// (checked at least every 5 ms).
  bool acquire(const std::function<bool()>& stop);

 private:
  const Clock& clock_;
  std::mutex mutex_;
  Clock::duration interval_;
  Clock::time_point next_;
};

}  // namespace barista::pool
