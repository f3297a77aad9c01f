// The engine judges its jobs in the time of the clock it is given (daemon/pool/clock.hpp):
// backoff, deadlines and rate checked exactly, in a time the test controls, without waiting for
// them in real time.
#include "daemon/pool/pool.hpp"
#include "tests/unit/pool/manual_clock.hpp"
#include "tests/unit/pool/memory_backend.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace barista::test {
namespace {

using batch::JobStatus;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr milliseconds kPatience{10'000};

struct ClockedEngine {
  ManualClock clock;
  std::shared_ptr<MemoryBackend> backend = std::make_shared<MemoryBackend>();
  std::unique_ptr<pool::Pool> pool;

  ClockedEngine(const config::PoolConfig& cfg, bool auto_advance) : clock(auto_advance) {
    script_stats().reset();
    script_clock().store(&clock);
    pool = std::make_unique<pool::Pool>(cfg, script_plugin(), backend, backend, clock);
    pool->start();
  }
  ClockedEngine(const ClockedEngine&) = delete;
  ClockedEngine& operator=(const ClockedEngine&) = delete;
  ~ClockedEngine() {
    pool->stop(milliseconds(2000));
    script_clock().store(nullptr);
  }
};

std::vector<ManualClock::duration> durations(std::initializer_list<milliseconds> ms) {
  return {ms.begin(), ms.end()};
}

// Waits (in real time) until something sleeps on `clock`.
bool eventually_sleeping(const ManualClock& clock) {
  const auto until = std::chrono::steady_clock::now() + kPatience;
  while (clock.sleeps().empty()) {
    if (std::chrono::steady_clock::now() > until) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

}  // namespace

TEST_CASE("clock: backoff doubles up to max_backoff, in the pool's time", "[pool][clock]") {
  auto cfg = script_pool(1);
  cfg.retries = 4;
  cfg.backoff = seconds(10);
  cfg.max_backoff = seconds(30);
  ClockedEngine e(cfg, /*auto_advance=*/true);
  e.backend->add("b", {"fail"});
  REQUIRE(e.backend->wait_results(1, kPatience));  // 70 s of backoff, passed at once
  const auto r = e.backend->by_id("b").at("1").at(0);
  CHECK(r.status == JobStatus::kFailed);
  CHECK(r.attempts == 5);
  CHECK(e.clock.sleeps() == durations({seconds(10), seconds(20), seconds(30), seconds(30)}));
  CHECK(e.clock.elapsed() == seconds(90));
  CHECK(r.ms == Approx(90'000));  // the job's duration is the pool's time too
}

TEST_CASE("clock: a retry waits for its backoff and not a moment longer", "[pool][clock]") {
  auto cfg = script_pool(1);
  cfg.retries = 1;
  cfg.backoff = seconds(5);
  ClockedEngine e(cfg, /*auto_advance=*/false);
  e.backend->add("w", {"flaky:1"});
  REQUIRE(eventually_sleeping(e.clock));
  e.clock.advance(milliseconds(4999));
  std::this_thread::sleep_for(milliseconds(50));
  CHECK(script_stats().started.load() == 1);  // still in its backoff
  CHECK(e.backend->results().empty());
  e.clock.advance(milliseconds(1));
  REQUIRE(e.backend->wait_results(1, kPatience));
  const auto r = e.backend->by_id("w").at("1").at(0);
  CHECK(r.status == JobStatus::kOk);
  CHECK(r.attempts == 2);
}

TEST_CASE("clock: an attempt is past its deadline when the pool's time says so", "[pool][clock]") {
  auto cfg = script_pool(1);
  cfg.timeout = milliseconds(1000);
  cfg.retries = 1;
  cfg.backoff = milliseconds(0);
  ClockedEngine e(cfg, /*auto_advance=*/false);
  // Each attempt moves the time on: past the deadline, then exactly to it (not past it).
  e.backend->add("d", {"advance:1001", "advance:1000"});
  REQUIRE(e.backend->wait_results(2, kPatience));
  const auto r = e.backend->by_id("d");
  CHECK(r.at("1").at(0).status == JobStatus::kTimeout);
  CHECK(r.at("1").at(0).attempts == 2);
  CHECK(r.at("1").at(0).text == "deadline of 1000 ms exceeded");
  CHECK(r.at("2").at(0).status == JobStatus::kOk);
  CHECK(e.clock.elapsed() == milliseconds(1001 * 2 + 1000));
}

TEST_CASE("clock: rate spaces attempt starts evenly in the pool's time", "[pool][clock]") {
  auto cfg = script_pool(1);
  cfg.rate = config::Rate{2, seconds(1)};
  ClockedEngine e(cfg, /*auto_advance=*/true);
  e.backend->add("r", std::vector<std::string>(5, "ok:x"));
  REQUIRE(e.backend->wait_results(5, kPatience));
  // The first start at once, then one each half second.
  CHECK(e.clock.sleeps() ==
        durations({milliseconds(500), milliseconds(500), milliseconds(500), milliseconds(500)}));
  CHECK(e.clock.elapsed() == seconds(2));
}

}  // namespace barista::test
