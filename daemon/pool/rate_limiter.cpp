#include "daemon/pool/rate_limiter.hpp"

#include <algorithm>
#include <thread>

namespace barista::pool {

RateLimiter::RateLimiter(std::uint64_t count, std::chrono::milliseconds per)
    : interval_(std::chrono::duration_cast<Clock::duration>(per) /
                static_cast<Clock::rep>(std::max<std::uint64_t>(count, 1))),
      next_(Clock::now()) {}

bool RateLimiter::acquire(const std::function<bool()>& stop) {
  Clock::time_point slot;
  {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    // An idle limiter does not save up tokens: at most one start goes at once.
    slot = std::max(next_, now);
    next_ = slot + interval_;
  }
  for (;;) {
    if (stop()) {
      return false;
    }
    const auto now = Clock::now();
    if (now >= slot) {
      return true;
    }
    std::this_thread::sleep_for(
        std::min<Clock::duration>(slot - now, std::chrono::milliseconds(5)));
  }
}

}  // namespace barista::pool
