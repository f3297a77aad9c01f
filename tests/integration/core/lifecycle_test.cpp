// The daemon's life around its batches (docs/reference.md#batch-life, #stop, #crash-safety):
// batches sharing a pool's workers, graceful stop with SIGTERM, kill -9 and restart on the same
// spool.

#include "tests/integration/core/core_support.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace barista::itest {
namespace {

namespace fs = std::filesystem;

// Every id 1..n exactly once and every status ok; problems otherwise.
Problems check_complete(const std::vector<JobResult>& results, int n) {
  Problems problems;
  std::vector<int> seen(static_cast<std::size_t>(n) + 1, 0);
  for (const auto& r : results) {
    int i = 0;
    try {
      i = std::stoi(r.id);
    } catch (const std::exception&) {
    }
    if (i < 1 || i > n) {
      problems.add("unexpected id: " + r.line);
      continue;
    }
    if (++seen[static_cast<std::size_t>(i)] == 2) {
      problems.add("id " + r.id + " has more than one result");
    }
    if (r.status != "ok") {
      problems.add("not ok: " + r.line);
    }
  }
  for (int i = 1; i <= n; ++i) {
    if (seen[static_cast<std::size_t>(i)] == 0) {
      problems.add("id " + std::to_string(i) + " has no result");
    }
  }
  return problems;
}

TEST_CASE("batches of one pool share its workers", "[integration][sharing]") {
  Daemon d(
      "  shared:\n"
      "    plugin: fx_slow\n"
      "    workers: 2\n"
      "    config:\n"
      "      ms: 100ms\n");
  d.start();
  // Each batch is bigger than what the pool's queue holds ahead of its workers (a few slow
  // jobs), so sharing cannot be mistaken for prefetching.
  constexpr int kJobs = 16;
  const std::string jobs = text_batch(kJobs, [](int) { return "sleep"; });
  d.drop("shared", "a.txt", jobs);
  d.drop("shared", "b.txt", jobs);

  // When the first batch ends, how far the other one got. One after the other, the second
  // would not have finished a single job yet (it would start while the first one's last jobs
  // run); shared, both advance together and the other is more than halfway.
  std::string first;
  std::size_t other_done = 0;
  REQUIRE(d.wait_until(
      [&] {
        for (const auto& [x, y] : {std::pair{"a", "b"}, std::pair{"b", "a"}}) {
          if (fs::exists(d.pool_dir("shared") / "done" / x / "summary.json")) {
            first = x;
            other_done = results_so_far(d, "shared", y);
            return true;
          }
        }
        return false;
      },
      seconds(15)));
  INFO("first batch to end: " << first << "; the other had " << other_done << " results then");
  CHECK(other_done >= 5);
  const auto a = d.wait_batch("shared", "a");
  const auto b = d.wait_batch("shared", "b");
  CHECK(a.summary.ok == kJobs);
  CHECK(b.summary.ok == kJobs);
}

TEST_CASE("SIGTERM lets running jobs finish; the rest of the batch runs after a restart",
          "[integration][stop]") {
  Daemon d(
      "  slow:\n"
      "    plugin: fx_slow\n"
      "    workers: 2\n"
      "    config:\n"
      "      ms: 300ms\n",
      "shutdown_timeout: 5s\n");
  d.start();
  constexpr int kJobs = 10;
  d.drop("slow", "long.txt", text_batch(kJobs, [](int) { return "sleep"; }));
  const auto results_file = d.active("slow", "long") / "results.jsonl";
  REQUIRE(d.wait_until([&] { return count_lines(results_file) >= 2; }, seconds(10)));

  const auto term = Clock::now();
  d.signal(SIGTERM);
  const auto code = d.wait_exit(seconds(5));
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(ms_between(term, Clock::now()) < 3000.0);  // the running jobs needed 300 ms at most

  // Still active, with the results of the jobs that finished (running ones were let finish).
  CHECK(fs::exists(d.active("slow", "long")));
  CHECK_FALSE(fs::exists(d.active("slow", "long") / "summary.json"));
  CHECK_FALSE(fs::exists(d.pool_dir("slow") / "done" / "long"));
  const auto before = read_results(results_file);
  CHECK(before.size() >= 2);
  CHECK(before.size() < static_cast<std::size_t>(kJobs));
  for (const auto& r : before) {
    INFO(r.line);
    CHECK(r.status == "ok");  // none of them was cut short by the stop
  }

  d.start();
  const auto end = d.wait_batch("slow", "long", seconds(20));
  CHECK(end.folder == "done");
  const auto problems = check_complete(end.results, kJobs);
  INFO(problems.text());
  CHECK(problems.empty());
  CHECK(end.results.size() == static_cast<std::size_t>(kJobs));
  CHECK(end.summary.jobs == kJobs);
  CHECK(end.summary.ok == kJobs);
}

TEST_CASE("SIGINT stops an idle daemon with exit 0", "[integration][stop]") {
  Daemon d("  echo:\n    plugin: echo\n");
  d.start();
  d.signal(SIGINT);
  const auto code = d.wait_exit(seconds(5));
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("SIGTERM past shutdown_timeout cancels running jobs without a result",
          "[integration][stop]") {
  Daemon d(
      "  slow:\n"
      "    plugin: fx_slow\n"
      "    workers: 2\n"
      "    config:\n"
      "      ms: 10s\n",
      "shutdown_timeout: 200ms\n");
  d.start();
  d.drop("slow", "ten.txt", "sleep\nsleep\nsleep\n");
  REQUIRE(d.wait_log("batch 'ten' claimed", seconds(5)));
  // Nothing observable tells that a worker entered process(); give them a moment to.
  std::this_thread::sleep_for(milliseconds(200));

  const auto term = Clock::now();
  d.signal(SIGTERM);
  const auto code = d.wait_exit(seconds(8));
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(ms_between(term, Clock::now()) < 2000.0);  // not the 10 s the jobs would sleep
  CHECK(fs::exists(d.active("slow", "ten")));
  CHECK(count_lines(d.active("slow", "ten") / "results.jsonl") == 0);

  // They run after the next start (with shorter jobs, so the test stays quick).
  d.set_pools("  slow:\n    plugin: fx_slow\n    workers: 2\n    config:\n      ms: 50ms\n");
  d.start();
  const auto end = d.wait_batch("slow", "ten", seconds(10));
  CHECK(end.folder == "done");
  const auto problems = check_complete(end.results, 3);
  INFO(problems.text());
  CHECK(problems.empty());
  CHECK(end.summary.ok == 3);
}

TEST_CASE("kill -9 mid-batch, then restart: one result per job", "[integration][crash]") {
  Daemon d(
      "  echo:\n"
      "    plugin: echo\n"
      "    workers: 4\n"
      "    config:\n"
      "      delay: 1ms\n");
  d.start();
  constexpr int kJobs = 3000;
  d.drop("echo", "crash.txt", text_batch(kJobs, [](int i) { return "job " + std::to_string(i); }));
  const auto results_file = d.active("echo", "crash") / "results.jsonl";
  REQUIRE(d.wait_until([&] { return count_lines(results_file) >= 300; }, seconds(20)));
  d.kill9();
  REQUIRE_FALSE(fs::exists(d.pool_dir("echo") / "done" / "crash"));  // really mid-batch
  std::string before = slurp(results_file);
  before.resize(before.rfind('\n') + 1);  // a torn last line may be dropped
  INFO("results before the restart: " << count_lines(results_file));

  d.start();
  const auto end = d.wait_batch("echo", "crash", seconds(30));
  CHECK(end.folder == "done");
  const auto problems = check_complete(end.results, kJobs);
  INFO(problems.text());
  CHECK(problems.empty());
  CHECK(end.results.size() == static_cast<std::size_t>(kJobs));
  CHECK(end.summary.jobs == kJobs);
  CHECK(end.summary.ok == kJobs);
  CHECK(end.summary.failed == 0);
  // What was recorded before the crash is kept as it was, not run again.
  CHECK(slurp(end.dir / "results.jsonl").starts_with(before));
}

}  // namespace
}  // namespace barista::itest
