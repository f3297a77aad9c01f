#include "daemon/pool/rate_limiter.hpp"

#include <algorithm>

namespace barista::pool {

RateLimiter::RateLimiter(std::uint64_t count, std::chrono::milliseconds per, const Clock& clock)
    : clock_(clock),
      interval_(std::chrono::duration_cast<Clock::duration>(per) /
                static_cast<Clock::duration::rep>(std::max<std::uint64_t>(count, 1))),
      next_(clock.now()) {}

bool RateLimiter::acquire(const std::function<bool()>& stop) {
  Clock::time_point slot;
  {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    // An idle limiter does not save up tokens: at most one start goes at once.
    slot = std::max(next_, now);
    next_ = slot + interval_;
  }
  return clock_.sleep_until(slot, stop);
}

}  // namespace barista::pool
