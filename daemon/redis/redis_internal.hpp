#pragma once

// What the Redis backend's files share (redis_feed.cpp, redis_results.cpp).

#include "daemon/batch/result_buffer.hpp"
#include "daemon/common/fs.hpp"
#include "daemon/config/config.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>

namespace barista::redis::internal {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline constexpr milliseconds kRedisTimeout{2000};
inline constexpr milliseconds kReadBlock{200};
inline constexpr milliseconds kFirstBackoff{100};
inline constexpr milliseconds kMaxBackoff{5000};
// How often the feeder re-reads the state of the batches it holds jobs of (a cancel message
// missed while the listener was reconnecting is still seen) and forgets finished ones.
inline constexpr milliseconds kRefreshEvery{1000};
// A batch no job of which was seen for this long is forgotten (asked about again if it comes back).
inline constexpr std::chrono::seconds kForgetAfter{10};

inline std::string now_iso() { return common::iso8601_utc(std::chrono::system_clock::now()); }

inline std::string result_line(std::string_view id, batch::JobStatus status, int attempts,
                               double ms, std::string_view text, int throttled = 0) {
  std::string line;
  batch::append_result_line(line, id, status, attempts, ms, text, throttled);
  line.pop_back();  // the '\n': Redis keeps lines, not a file
  return line;
}

inline std::chrono::seconds ttl_of(const config::RedisConfig& cfg) {
  return std::max(std::chrono::seconds(1),
                  std::chrono::duration_cast<std::chrono::seconds>(cfg.results_ttl));
}

// Sleeps up to `d`, in short steps, unless `stop` becomes true.
template <class Stop>
void pause(milliseconds d, Stop stop) {
  const auto until = Clock::now() + d;
  while (!stop() && Clock::now() < until) {
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), milliseconds(20)));
  }
}

}  // namespace barista::redis::internal
