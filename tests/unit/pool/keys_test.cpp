// Keys in the engine (daemon/pool/key_gate.hpp): per_key limits, throttles that spend no retry,
// paused keys, and no head-of-line blocking behind a key that may not start, with the jobs set
// aside bounded. Driven through the in-memory backend: "@KEY PAYLOAD" gives a job its key.
#include "daemon/pool/pool.hpp"
#include "tests/unit/pool/memory_backend.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace barista::test {
namespace {

using batch::JobStatus;
using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock;

constexpr milliseconds kKeyWait{20'000};

using KeyedEngine = ScriptEngine;

template <class Done>
bool soon(Done done, milliseconds limit = kKeyWait) {
  const auto until = SteadyTime::now() + limit;
  while (!done()) {
    if (SteadyTime::now() > until) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

int most_of(const std::string& name) {
  auto& stats = script_stats();
  std::lock_guard lock(stats.mutex);
  return stats.most_by[name];
}

}  // namespace

TEST_CASE("keys: per_key.max_in_flight holds for every key, and keys run side by side",
          "[pool][keys]") {
  auto cfg = script_pool(8, 64);
  cfg.per_key.max_in_flight = 2;
  KeyedEngine e(cfg);
  std::vector<std::string> jobs;
  for (int i = 0; i < 40; ++i) {
    for (const char* key : {"a", "b", "c"}) {
      jobs.push_back(std::string("@") + key + " hold:" + key + ":5");
    }
  }
  e.backend->add("b1", jobs);
  REQUIRE(e.backend->wait_results(jobs.size(), kKeyWait));
  for (const auto& r : e.backend->results()) {
    CHECK(r.status == JobStatus::kOk);
  }
  CHECK(most_of("a") == 2);
  CHECK(most_of("b") == 2);
  CHECK(most_of("c") == 2);
  CHECK(script_stats().most.load() > 2);  // the keys' attempts ran at once
}

TEST_CASE("keys: jobs of other keys run while one key is at its limit", "[pool][keys]") {
  auto cfg = script_pool(4, 64);
  cfg.per_key.max_in_flight = 1;
  KeyedEngine e(cfg);
  // 20 slow jobs of one key first (1 s, one at a time), then 200 quick ones of other keys.
  std::vector<std::string> jobs(20, "@slow hold:slow:50");
  for (int i = 0; i < 200; ++i) {
    jobs.push_back("@k" + std::to_string(i % 10) + " ok:x");
  }
  e.backend->add("b1", jobs);
  REQUIRE(soon([&] {
    const auto by = e.backend->by_id("b1");
    for (int id = 21; id <= 220; ++id) {
      if (!by.contains(std::to_string(id))) {
        return false;
      }
    }
    return true;
  }));
  const auto by = e.backend->by_id("b1");
  int slow_done = 0;
  for (int i = 1; i <= 20; ++i) {
    slow_done += by.contains(std::to_string(i)) ? 1 : 0;
  }
  CHECK(slow_done < 20);  // the quick ones did not wait behind the busy key
  REQUIRE(e.backend->wait_results(jobs.size(), kKeyWait));
  CHECK(most_of("slow") == 1);
}

TEST_CASE("keys: a throttle spends no retry, holds its key back, and is counted", "[pool][keys]") {
  auto cfg = script_pool(2, 64);
  cfg.retries = 0;
  KeyedEngine e(cfg);
  // Throttled for 300 ms twice, then ok.
  e.backend->add("b1", {"@a throttle:300:2"});
  REQUIRE(soon([&] { return e.pool->status().throttles == 1; }));
  // While key a is throttled: its next job waits, another key's does not.
  e.backend->add("b2", {"@a ok:after"});
  e.backend->add("b3", {"@b ok:other"});
  REQUIRE(e.backend->wait_results(3, kKeyWait));
  const auto results = e.backend->results();
  auto first = e.backend->by_id("b1")["1"];
  REQUIRE(first.size() == 1);
  CHECK(first[0].status == JobStatus::kOk);  // no retry was spent: retries is 0
  CHECK(first[0].throttled == 2);
  CHECK(first[0].attempts == 3);
  CHECK(first[0].ms >= 600.0);
  CHECK(results.front().batch == "b3");
  const auto after = e.backend->by_id("b2")["1"];
  REQUIRE(after.size() == 1);
  CHECK(after[0].status == JobStatus::kOk);
  CHECK(after[0].throttled == 0);
  CHECK(e.pool->status().throttles == 2);
}

TEST_CASE("keys: a job without a key throttles the whole pool", "[pool][keys]") {
  auto cfg = script_pool(2, 64);
  KeyedEngine e(cfg);
  e.backend->add("b1", {"throttle:300:1"});
  REQUIRE(
      soon([&] { return e.pool->status().keys_blocked > 0 || e.pool->status().throttles > 0; }));
  const auto start = SteadyTime::now();
  e.backend->add("b2", {"@z ok:later"});
  REQUIRE(e.backend->wait_results(2, kKeyWait));
  CHECK(SteadyTime::now() - start >= milliseconds(200));
  CHECK(e.pool->status().throttles == 1);
}

TEST_CASE("keys: past max_throttled the job fails with the reason", "[pool][keys]") {
  auto cfg = script_pool(1, 64);
  cfg.max_throttled = milliseconds(100);
  KeyedEngine e(cfg);
  e.backend->add("b1", {"@a throttle:60:10"});
  REQUIRE(e.backend->wait_results(1, kKeyWait));
  const auto r = e.backend->results().front();
  CHECK(r.status == JobStatus::kFailed);
  CHECK(r.throttled == 2);
  CHECK(r.text == "throttled for longer than max_throttled (100ms): slow down");
}

TEST_CASE("keys: a paused key holds a million jobs back in bounded memory", "[pool][keys]") {
  auto cfg = script_pool(4, 64);
  KeyedEngine e(cfg);
  e.pool->set_paused(false, {"blocked"});
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr int kJobs = 100'000;  // the sanitizers' builds are ten times slower
#else
  constexpr int kJobs = 1'000'000;
#endif
  // 500 jobs of the paused key among the others: the others all finish.
  std::vector<std::string> mixed;
  mixed.reserve(kJobs);
  const int every = kJobs / 500;
  for (int i = 0; i < kJobs; ++i) {
    mixed.emplace_back(i % every == 0 ? "@blocked ok:b" : "@k" + std::to_string(i % 7) + " ok:x");
  }
  e.backend->add("mixed", mixed);
  REQUIRE(e.backend->wait_results(kJobs - 500, milliseconds(120'000)));
  auto s = e.pool->status();
  CHECK(s.set_aside == 500);
  CHECK(s.paused_keys == std::vector<std::string>{"blocked"});
  // Then as many jobs of the paused key alone: at most the lookahead is set aside; the rest
  // waits unread.
  e.backend->add("behind", std::vector<std::string>(kJobs, "@blocked ok:b"));
  REQUIRE(soon([&] { return e.pool->status().set_aside == pool::Pool::kMinLookahead; }));
  std::this_thread::sleep_for(milliseconds(100));
  s = e.pool->status();
  CHECK(s.set_aside == pool::Pool::kMinLookahead);
  // Set aside, queued, and a chunk in each of the 4 workers' hands: bounded, whatever waits.
  CHECK(s.queued <= pool::Pool::kMinLookahead + 64 + 4 * 1024);
  CHECK(e.backend->results().size() == kJobs - 500);
  e.pool->set_paused(false, {});
  REQUIRE(e.backend->wait_results(2 * kJobs, milliseconds(120'000)));
}

TEST_CASE("keys: a million distinct keys cost no memory once their jobs have run", "[pool][keys]") {
  auto cfg = script_pool(4, 64);
  cfg.per_key.max_in_flight = 1;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr int kKeys = 100'000;
#else
  constexpr int kKeys = 1'000'000;
#endif
  KeyedEngine e(cfg);
  std::vector<std::string> jobs;
  jobs.reserve(kKeys);
  for (int i = 0; i < kKeys; ++i) {
    jobs.push_back("@key" + std::to_string(i) + " ok:x");
  }
  e.backend->add("many", jobs);
  std::atomic<std::size_t> most{0};
  std::atomic<bool> done{false};
  std::thread sampler([&] {
    while (!done.load()) {
      most.store(std::max(most.load(), e.pool->tracked_keys()));
      std::this_thread::sleep_for(milliseconds(5));
    }
  });
  const bool all = e.backend->wait_results(kKeys, milliseconds(120'000));
  done.store(true);
  sampler.join();
  REQUIRE(all);
  INFO("at most " << most.load() << " keys tracked at once");
  CHECK(most < static_cast<std::size_t>(kKeys) / 2);
  // Forgotten at the monitor's next ticks.
  CHECK(soon([&] { return e.pool->tracked_keys() == 0; }, milliseconds(2000)));
}

TEST_CASE("keys: a paused pool starts nothing until resumed; running attempts finish",
          "[pool][keys]") {
  KeyedEngine e(script_pool(2, 64));
  e.backend->add("b1", {"busy:200"});
  REQUIRE(soon([] { return script_stats().started.load() == 1; }));
  e.pool->set_paused(true, {});
  e.backend->add("b2", std::vector<std::string>(10, "ok:x"));
  REQUIRE(e.backend->wait_results(1, kKeyWait));  // the running one finished
  std::this_thread::sleep_for(milliseconds(200));
  CHECK(e.backend->results().size() == 1);
  CHECK(e.pool->status().paused);
  e.pool->set_paused(false, {});
  REQUIRE(e.backend->wait_results(11, kKeyWait));
}

TEST_CASE("keys: a pause holds the rest of the chunks in the workers' hands too", "[pool][keys]") {
  KeyedEngine e(script_pool(2, 1024));
  // Quick jobs first: chunks grow to hundreds of jobs. The slow ones behind are read into
  // chunks that large, seconds of work in each worker's hands.
  std::vector<std::string> jobs(100'000, "ok:x");
  jobs.insert(jobs.end(), 2'000, "busy:20");
  e.backend->add("b1", jobs);
  REQUIRE(soon([&] { return script_stats().started.load() > 100'010; }));
  e.pool->set_paused(true, {});
  std::this_thread::sleep_for(milliseconds(100));  // the attempts running finish
  const auto at_pause = script_stats().started.load();
  std::this_thread::sleep_for(milliseconds(300));
  CHECK(script_stats().started.load() == at_pause);  // nothing new started, chunk in hand or not
  e.pool->set_paused(false, {});
  REQUIRE(soon([&] { return script_stats().started.load() > at_pause + 4; }));
}

}  // namespace barista::test
