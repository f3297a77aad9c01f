// The pool's engine driven through an in-memory source and sink (memory_backend.hpp): the
// error policies, retries and backoff, deadlines and abandonment, rate, resize and stop, with
// exactly one result per job. No daemon, no files, no Redis.
#include "daemon/pool/pool.hpp"
#include "tests/unit/pool/memory_backend.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace barista::test {
namespace {

using batch::JobStatus;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kWait{10'000};

using Engine = ScriptEngine;

std::vector<std::string> repeat(const std::string& payload, int n) {
  return std::vector<std::string>(static_cast<std::size_t>(n), payload);
}

// Waits until `done` holds, up to `limit`.
template <class Done>
bool eventually(Done done, milliseconds limit = kWait) {
  const auto until = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > until) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

}  // namespace

TEST_CASE("engine: every job of every batch gets exactly one result", "[pool][engine]") {
  Engine e(script_pool(8, 64));
  std::vector<std::string> a;
  for (int i = 1; i <= 5000; ++i) {
    a.push_back("ok:" + std::to_string(i));
  }
  e.backend->add("a", a);
  e.backend->add("b", repeat("ok:b", 300));
  REQUIRE(e.backend->wait_results(5300, kWait));
  const auto results = e.backend->by_id("a");
  REQUIRE(results.size() == 5000);
  for (const auto& [id, rs] : results) {
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == JobStatus::kOk);
    CHECK(rs[0].attempts == 1);
    CHECK(rs[0].text == id);  // job N's payload was ok:N
  }
  CHECK(e.backend->by_id("b").size() == 300);
  CHECK(e.pool->status().queued == 0);
  // Results are handed over a chunk at a time, not one by one.
  CHECK(e.backend->flushes() < 5300);
}

TEST_CASE("engine: the queue bounds how far the jobs are read ahead", "[pool][engine]") {
  Engine e(script_pool(2, 16));
  e.backend->add("slow", repeat("busy:20", 200));
  REQUIRE(eventually([&] { return script_stats().running.load() == 2; }));
  // Two jobs run; at most `queue` more are read ahead of them (plus one spare chunk).
  CHECK(e.pool->status().queued <= 16 + 8);
  CHECK(e.backend->readable());
}

TEST_CASE("engine: continue records a failure and the batch goes on", "[pool][engine]") {
  Engine e(script_pool(2));
  e.backend->add("c", {"ok:1", "fail", "ok:3", "fatal", "throw", "ok:6"});
  REQUIRE(e.backend->wait_results(6, kWait));
  const auto r = e.backend->by_id("c");
  CHECK(r.at("1")[0].status == JobStatus::kOk);
  CHECK(r.at("2")[0].status == JobStatus::kFailed);
  CHECK(r.at("2")[0].text == "boom");
  CHECK(r.at("3")[0].status == JobStatus::kOk);
  CHECK(r.at("4")[0].status == JobStatus::kFailed);
  CHECK(r.at("5")[0].status == JobStatus::kFailed);
  CHECK(r.at("5")[0].text == "thrown");
  CHECK(r.at("6")[0].status == JobStatus::kOk);
}

TEST_CASE("engine: cancel_all cancels the batch at its first failure, as errgroup does",
          "[pool][engine]") {
  auto cfg = script_pool(3, 8);
  cfg.on_error = config::OnError::kCancelAll;
  Engine e(cfg);
  // 1 waits to see the cancellation; 2 is busy and returns ok; 3 fails once both run; the rest
  // must never start.
  std::vector<std::string> jobs = {"wait_cancel", "busy:300", "fail_after:50"};
  const auto rest = repeat("ok:x", 50);
  jobs.insert(jobs.end(), rest.begin(), rest.end());
  auto b = e.backend->add("all", jobs);
  REQUIRE(e.backend->wait_results(jobs.size(), kWait));
  const auto r = e.backend->by_id("all");
  REQUIRE(r.size() == jobs.size());
  CHECK(b->cancelled());
  CHECK(r.at("3")[0].status == JobStatus::kFailed);
  CHECK(r.at("3")[0].text == "failed late");
  // Running when it was cancelled: saw ctx.cancelled(), its failure became `cancelled`.
  CHECK(r.at("1")[0].status == JobStatus::kCancelled);
  CHECK(r.at("1")[0].attempts == 1);
  // Running when it was cancelled and returned ok: the ok is kept.
  CHECK(r.at("2")[0].status == JobStatus::kOk);
  for (std::size_t i = 4; i <= jobs.size(); ++i) {
    const auto& one = r.at(std::to_string(i));
    REQUIRE(one.size() == 1);
    CHECK(one[0].status == JobStatus::kCancelled);
    CHECK(one[0].attempts == 0);  // never started
  }
  CHECK(script_stats().started.load() == 3);

  // The pool's other batches are untouched.
  e.backend->add("next", repeat("ok:y", 10));
  REQUIRE(e.backend->wait_results(jobs.size() + 10, kWait));
  for (const auto& [id, rs] : e.backend->by_id("next")) {
    CHECK(rs[0].status == JobStatus::kOk);
  }
}

TEST_CASE("engine: a batch cancelled from outside stops its running and queued jobs",
          "[pool][engine]") {
  Engine e(script_pool(2, 8));
  auto b = e.backend->add("x", repeat("wait_cancel", 20));
  REQUIRE(eventually([&] { return script_stats().running.load() == 2; }));
  b->cancel();
  REQUIRE(e.backend->wait_results(20, kWait));
  for (const auto& [id, rs] : e.backend->by_id("x")) {
    CHECK(rs[0].status == JobStatus::kCancelled);
  }
  CHECK(script_stats().started.load() == 2);
}

TEST_CASE("engine: retries with doubling backoff; fatal failures are not retried",
          "[pool][engine]") {
  auto cfg = script_pool(4);
  cfg.retries = 3;
  cfg.backoff = milliseconds(20);
  cfg.max_backoff = milliseconds(1000);
  Engine e(cfg);
  e.backend->add("r", {"flaky:2", "fatal", "fail", "flaky:9"});
  REQUIRE(e.backend->wait_results(4, kWait));
  const auto r = e.backend->by_id("r");
  CHECK(r.at("1")[0].status == JobStatus::kOk);
  CHECK(r.at("1")[0].attempts == 3);
  CHECK(r.at("1")[0].ms >= 20 + 40);  // two backoffs: 20 ms, then 40 ms
  CHECK(r.at("2")[0].status == JobStatus::kFailed);
  CHECK(r.at("2")[0].attempts == 1);
  CHECK(r.at("3")[0].status == JobStatus::kFailed);
  CHECK(r.at("3")[0].attempts == 4);  // the first and three retries
  CHECK(r.at("3")[0].ms >= 20 + 40 + 80);
  CHECK(r.at("4")[0].status == JobStatus::kFailed);
  CHECK(r.at("4")[0].text == "flaky");
}

TEST_CASE("engine: an attempt past its deadline is a timeout, and is retried", "[pool][engine]") {
  auto cfg = script_pool(1);
  cfg.timeout = milliseconds(30);
  cfg.retries = 1;
  Engine e(cfg);
  e.backend->add("t", {"busy:120", "ok:fast"});
  REQUIRE(e.backend->wait_results(2, kWait));
  const auto r = e.backend->by_id("t");
  CHECK(r.at("1")[0].status == JobStatus::kTimeout);
  CHECK(r.at("1")[0].attempts == 2);
  CHECK(r.at("1")[0].text == "deadline of 30 ms exceeded");
  CHECK(r.at("2")[0].status == JobStatus::kOk);
}

TEST_CASE("engine: a processor that ignores its deadline is abandoned and replaced",
          "[pool][engine]") {
  auto cfg = script_pool(2, 8);
  cfg.timeout = milliseconds(50);
  Engine e(cfg);
  std::vector<std::string> jobs = {"hang:2000"};
  const auto rest = repeat("ok:z", 30);
  jobs.insert(jobs.end(), rest.begin(), rest.end());
  e.backend->add("h", jobs);
  REQUIRE(e.backend->wait_results(jobs.size(), kWait));
  const auto r = e.backend->by_id("h");
  CHECK(r.at("1")[0].status == JobStatus::kTimeout);
  CHECK_THAT(r.at("1")[0].text, Catch::Contains("worker was abandoned"));
  CHECK(r.at("1")[0].ms < 1900);  // given its result one second after the deadline, not at 2 s
  for (std::size_t i = 2; i <= jobs.size(); ++i) {
    CHECK(r.at(std::to_string(i))[0].status == JobStatus::kOk);
  }
  const auto s = e.pool->status();
  CHECK(s.abandoned == 1);
  // The pool keeps its two workers: two slow jobs run side by side.
  e.backend->add("after", repeat("busy:200", 2));
  REQUIRE(eventually([&] { return script_stats().running.load() >= 2; }));
  REQUIRE(e.backend->wait_results(jobs.size() + 2, kWait));
  // The stuck attempt returns in the end; what it returns is discarded.
  REQUIRE(eventually([&] { return script_stats().running.load() == 0; }));
  std::this_thread::sleep_for(milliseconds(50));
  CHECK(e.backend->results().size() == jobs.size() + 2);
}

TEST_CASE("engine: rate paces attempt starts across the workers", "[pool][engine]") {
  auto cfg = script_pool(4);
  cfg.rate = config::Rate{50, milliseconds(1000)};
  Engine e(cfg);
  const auto start = Clock::now();
  e.backend->add("p", repeat("ok:r", 11));
  REQUIRE(e.backend->wait_results(11, kWait));
  // Eleven starts at 50/s: ten intervals of 20 ms after the first.
  CHECK(Clock::now() - start >= milliseconds(190));
}

TEST_CASE("engine: a reload resizes the pool while a batch runs", "[pool][engine]") {
  auto cfg = script_pool(1, 8);
  Engine e(cfg);
  e.backend->add("grow", repeat("busy:100", 12));
  REQUIRE(eventually([&] { return script_stats().running.load() == 1; }));
  cfg.workers = 4;
  e.pool->reconfigure(cfg, script_plugin(), pool::Pool::make_processors(cfg, *script_plugin()));
  REQUIRE(eventually([&] { return script_stats().running.load() == 4; }));
  CHECK(e.pool->status().workers == 4);
  cfg.workers = 2;
  e.pool->reconfigure(cfg, script_plugin(), {});
  REQUIRE(e.backend->wait_results(12, kWait));
  script_stats().reset();
  e.backend->add("shrunk", repeat("busy:60", 6));
  REQUIRE(e.backend->wait_results(18, kWait));
  CHECK(script_stats().most.load() == 2);
  std::set<std::string> ids;
  for (const auto& res : e.backend->results()) {
    CHECK(ids.insert(res.batch + "/" + res.id).second);  // none ran twice
  }
}

TEST_CASE("engine: a graceful stop lets running jobs finish and starts no others",
          "[pool][engine]") {
  Engine e(script_pool(2, 8));
  e.backend->add("s", repeat("busy:150", 10));
  REQUIRE(eventually([&] { return script_stats().running.load() == 2; }));
  e.pool->stop(milliseconds(2000));
  const auto results = e.backend->results();
  CHECK(results.size() == 2);  // the two that ran; the rest have no result: they run next time
  for (const auto& r : results) {
    CHECK(r.status == JobStatus::kOk);
  }
  CHECK(script_stats().started.load() == 2);
}

TEST_CASE("engine: a stop that times out interrupts running jobs and discards their results",
          "[pool][engine]") {
  Engine e(script_pool(2, 8));
  auto b = e.backend->add("i", repeat("wait_cancel", 4));
  REQUIRE(eventually([&] { return script_stats().running.load() == 2; }));
  const auto start = Clock::now();
  e.pool->stop(milliseconds(50));
  CHECK(Clock::now() - start < milliseconds(2000));  // they saw ctx.cancelled()
  CHECK(e.backend->results().empty());
  CHECK_FALSE(b->cancelled());  // interrupted, not cancelled: its jobs run after a restart
}

TEST_CASE("engine: a held pool reads nothing until released", "[pool][engine]") {
  auto backend = std::make_shared<MemoryBackend>();
  pool::Pool p(script_pool(2), script_plugin(), backend, backend);
  backend->add("held", repeat("ok:h", 5));
  p.start(/*hold=*/true);
  std::this_thread::sleep_for(milliseconds(100));
  CHECK(backend->results().empty());
  p.release();
  CHECK(backend->wait_results(5, kWait));
  p.stop(milliseconds(1000));
}

}  // namespace barista::test
