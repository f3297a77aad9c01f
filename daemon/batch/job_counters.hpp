#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace barista::batch {

/// A pool's running totals for the metrics, bumped as results are recorded. Plain relaxed
/// atomics: a job pays a few uncontended increments, and the metrics endpoint reads them when
/// scraped (prometheus-cpp's Collectable), not per job.
struct JobCounters {
  /// Upper bounds of the job duration histogram's buckets, in seconds (+Inf is implied).
  static constexpr std::array<double, 14> kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};

  std::array<std::atomic<std::uint64_t>, 5> jobs{};  ///< by JobStatus
  std::array<std::atomic<std::uint64_t>, kBuckets.size() + 1>
      duration_buckets{};  ///< not cumulative
  std::atomic<std::uint64_t> duration_count{0};
  std::atomic<std::uint64_t> duration_sum_us{0};
  std::atomic<std::uint64_t> batches_done{0};
  std::atomic<std::uint64_t> batches_cancelled{0};

  /// Counts a job that ran (attempts > 0) for the duration histogram.
  void observe_duration(double seconds) noexcept {
    std::size_t i = 0;
    while (i < kBuckets.size() && seconds > kBuckets[i]) {
      ++i;
    }
    duration_buckets[i].fetch_add(1, std::memory_order_relaxed);
    duration_count.fetch_add(1, std::memory_order_relaxed);
    duration_sum_us.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  }
};

}  // namespace barista::batch
