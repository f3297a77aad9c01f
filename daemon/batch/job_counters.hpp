#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace barista::batch {

/// Jobs counted by one thread before they are added to the pool's JobCounters in one step.
struct JobTally {
  std::array<std::uint64_t, 5> jobs{};               ///< by JobStatus
  std::array<std::uint64_t, 15> duration_buckets{};  ///< JobCounters::kBuckets, then +Inf
  std::uint64_t duration_count = 0;
  std::uint64_t duration_sum_us = 0;

  /// Counts a job that ran (attempts > 0) for the duration histogram.
  void observe_duration(double seconds) noexcept;
};

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

  static_assert(std::tuple_size_v<decltype(JobTally::duration_buckets)> == kBuckets.size() + 1);

  /// Adds what one worker tallied since its last hand-over.
  void add(const JobTally& tally) noexcept;
};

inline void JobTally::observe_duration(double seconds) noexcept {
  std::size_t i = 0;
  while (i < JobCounters::kBuckets.size() && seconds > JobCounters::kBuckets[i]) {
    ++i;
  }
  ++duration_buckets[i];
  ++duration_count;
  duration_sum_us += static_cast<std::uint64_t>(seconds * 1e6);
}

inline void JobCounters::add(const JobTally& tally) noexcept {
  const auto bump = [](std::atomic<std::uint64_t>& a, std::uint64_t n) {
    if (n != 0) {
      a.fetch_add(n, std::memory_order_relaxed);
    }
  };
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    bump(jobs[i], tally.jobs[i]);
  }
  for (std::size_t i = 0; i < duration_buckets.size(); ++i) {
    bump(duration_buckets[i], tally.duration_buckets[i]);
  }
  bump(duration_count, tally.duration_count);
  bump(duration_sum_us, tally.duration_sum_us);
}

}  // namespace barista::batch
