// on_error: cancel_all (docs/reference.md#error-policies), with fx_slow: a failure cancels its
// batch the way Go's errgroup.WithContext does.
//
// The failing job is "fail" with `retries: 1` and `backoff: 200ms`: its final failure comes
// ~200 ms after it started, long after every worker has taken its first job. That makes it
// certain which jobs were running at the cancellation and which had not started.

#include "tests/integration/core/core_support.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace barista::itest {
namespace {

TEST_CASE("cancel_all: the first failure stops running jobs at once and cancels the rest",
          "[integration][cancel_all]") {
  Daemon d(
      "  slow:\n"
      "    plugin: fx_slow\n"
      "    workers: 4\n"
      "    on_error: cancel_all\n"
      "    retries: 1\n"
      "    backoff: 200ms\n"
      "    config:\n"
      "      ms: 5s\n");
  d.start();
  // Lines 1-3 sleep 5 s (cancellable) and line 4 fails: the four workers take one each.
  // Lines 5-12 wait in the queue behind them.
  const std::string input = text_batch(12, [](int i) { return i == 4 ? "fail" : "sleep"; });
  const auto dropped = d.drop("slow", "c.txt", input);
  const auto end = d.wait_batch("slow", "c", seconds(20));
  const double drop_to_end_ms = ms_between(dropped, end.seen);

  CHECK(end.folder == "failed");
  const Summary& s = end.summary;
  INFO(s.text);
  CHECK(s.state == "cancelled");
  CHECK(s.jobs == 12);
  CHECK(s.failed == 1);
  CHECK(s.cancelled == 11);
  CHECK(s.ok == 0);
  REQUIRE(s.has_first_error);
  CHECK(s.first_error_id == "4");
  CHECK(s.first_error == "failed on purpose");

  const auto results = by_id(end.results);
  REQUIRE(results.size() == 12);
  const auto& failure = results.at("4");
  INFO(failure.line);
  CHECK(failure.status == "failed");
  CHECK(failure.attempts == 2);
  CHECK(failure.error == "failed on purpose");
  for (const char* id : {"1", "2", "3"}) {
    // Running when the batch was cancelled: they saw ctx.cancelled() and stopped, within
    // 100 ms of the failure (they started with it; a job's `ms` counts from its start).
    const auto& r = results.at(id);
    INFO(r.line);
    CHECK(r.status == "cancelled");
    CHECK(r.attempts == 1);
    CHECK(r.error);
    CHECK(r.ms < failure.ms + 100.0);
  }
  for (int i = 5; i <= 12; ++i) {
    const auto& r = results.at(std::to_string(i));
    INFO(r.line);
    CHECK(r.status == "cancelled");
    CHECK(r.attempts == 0);  // never started
    CHECK(r.error);
    CHECK_FALSE(r.output);
  }
  // The jobs sleep 5 s each; the batch is over shortly after the failure at ~200 ms.
  CHECK(s.seconds < 1.5);
  CHECK(drop_to_end_ms < 2500.0);
}

TEST_CASE("cancel_all: a job running at the cancellation keeps the ok it returns",
          "[integration][cancel_all]") {
  Daemon d(
      "  keep:\n"
      "    plugin: fx_slow\n"
      "    workers: 3\n"
      "    on_error: cancel_all\n"
      "    retries: 1\n"
      "    backoff: 200ms\n"
      "    config:\n"
      "      ms: 800ms\n");
  d.start();
  // 1: sleeps 800 ms ignoring cancellation, then returns ok: it is running at the cancellation
  //    (~200 ms) and returns after it.
  // 2: fails, retried once 200 ms later, fails again: the batch is cancelled.
  // 3: ok at once, before the failure. Its worker then takes 4, a cancellable sleep.
  // 5, 6: every worker is busy until the cancellation: they never start.
  d.drop("keep", "k.txt", "ignore-deadline\nfail\nflaky-1\nsleep\nsleep\nsleep\n");
  const auto end = d.wait_batch("keep", "k", seconds(20));

  CHECK(end.folder == "failed");
  const Summary& s = end.summary;
  INFO(s.text);
  CHECK(s.state == "cancelled");
  CHECK(s.jobs == 6);
  CHECK(s.ok == 2);
  CHECK(s.failed == 1);
  CHECK(s.cancelled == 3);
  REQUIRE(s.has_first_error);
  CHECK(s.first_error_id == "2");

  const auto results = by_id(end.results);
  REQUIRE(results.size() == 6);
  {
    const auto& r = results.at("1");
    INFO(r.line);
    CHECK(r.status == "ok");
    CHECK(r.output == "slept");
    CHECK(r.attempts == 1);
    CHECK(r.ms >= results.at("2").ms);  // it returned after the failure
  }
  {
    const auto& r = results.at("2");
    INFO(r.line);
    CHECK(r.status == "failed");
    CHECK(r.attempts == 2);
  }
  {
    const auto& r = results.at("3");
    INFO(r.line);
    CHECK(r.status == "ok");
    CHECK(r.output == "ok after 1");
  }
  {
    const auto& r = results.at("4");
    INFO(r.line);
    CHECK(r.status == "cancelled");
    CHECK(r.attempts == 1);  // running at the cancellation; not retried
  }
  for (const char* id : {"5", "6"}) {
    const auto& r = results.at(id);
    INFO(r.line);
    CHECK(r.status == "cancelled");
    CHECK(r.attempts == 0);
  }
}

TEST_CASE("cancel_all: another batch of the same pool is untouched", "[integration][cancel_all]") {
  Daemon d(
      "  pool:\n"
      "    plugin: fx_slow\n"
      "    workers: 2\n"
      "    on_error: cancel_all\n"
      "    config:\n"
      "      ms: 100ms\n");
  d.start();
  d.drop("pool", "good.txt", text_batch(6, [](int) { return "sleep"; }));
  d.drop("pool", "bad.txt", "fail\nsleep\nsleep\nsleep\n");
  const auto bad = d.wait_batch("pool", "bad");
  const auto good = d.wait_batch("pool", "good");
  CHECK(bad.folder == "failed");
  CHECK(bad.summary.state == "cancelled");
  CHECK(good.folder == "done");
  INFO(good.summary.text);
  CHECK(good.summary.state == "done");
  CHECK(good.summary.ok == 6);
  CHECK(good.summary.cancelled == 0);
}

}  // namespace
}  // namespace barista::itest
