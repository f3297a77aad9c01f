#include "daemon/pool/clock.hpp"

#include <algorithm>
#include <thread>

namespace barista::pool {
namespace {

class SteadyClock final : public Clock {
 public:
  [[nodiscard]] time_point now() const override { return std::chrono::steady_clock::now(); }

  bool sleep_until(time_point until, const std::function<bool()>& stop) const override {
    for (;;) {
      if (stop()) {
        return false;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= until) {
        return true;
      }
      std::this_thread::sleep_for(std::min<duration>(until - now, std::chrono::milliseconds(5)));
    }
  }
};

}  // namespace

const Clock& Clock::steady() {
  static const SteadyClock clock;
  return clock;
}

}  // namespace barista::pool
