#include "daemon/pool/rate_limiter.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using barista::pool::RateLimiter;
using Clock = std::chrono::steady_clock;

TEST_CASE("starts are spaced evenly: 100 at 1000/s take at least 99 ms", "[pool][rate]") {
  RateLimiter limiter(1000, std::chrono::milliseconds(1000));
  const auto start = Clock::now();
  for (int i = 0; i < 100; ++i) {
    REQUIRE(limiter.acquire([] { return false; }));
  }
  CHECK(Clock::now() - start >= std::chrono::milliseconds(99));
}

TEST_CASE("the limit holds across threads", "[pool][rate]") {
  RateLimiter limiter(50, std::chrono::milliseconds(100));  // 500/s
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        limiter.acquire([] { return false; });
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(Clock::now() - start >= std::chrono::milliseconds(198));
}

TEST_CASE("a waiting start gives up when told to stop", "[pool][rate]") {
  RateLimiter limiter(1, std::chrono::milliseconds(3'600'000));  // one an hour
  REQUIRE(limiter.acquire([] { return false; }));
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop = true;
  });
  const auto start = Clock::now();
  CHECK_FALSE(limiter.acquire([&] { return stop.load(); }));
  CHECK(Clock::now() - start < std::chrono::seconds(5));
  stopper.join();
}
