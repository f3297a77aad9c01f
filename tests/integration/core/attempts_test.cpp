// What happens to one attempt (docs/reference.md#jobs): retries with doubling backoff, deadlines,
// processors that ignore their deadline or throw, and the rate cap on attempt starts.

#include "tests/integration/core/core_support.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

namespace barista::itest {
namespace {

std::string slow_pool(const std::string& name, const std::string& settings, const std::string& ms) {
  return "  " + name + ":\n    plugin: fx_slow\n" + settings + "    config:\n      ms: " + ms +
         "\n";
}

TEST_CASE("retries: failed attempts are retried with a doubling, capped backoff; fatal is not",
          "[integration][retries]") {
  Daemon d(
      slow_pool("r2", "    retries: 2\n    backoff: 10ms\n", "10ms") +
      slow_pool("r1", "    retries: 1\n    backoff: 10ms\n", "10ms") +
      slow_pool("r3", "    workers: 2\n    retries: 3\n    backoff: 100ms\n", "10ms") +
      slow_pool("capped", "    retries: 3\n    backoff: 100ms\n    max_backoff: 150ms\n", "10ms"));
  d.start();
  d.drop("r2", "f.txt", "flaky-3\n");
  d.drop("r1", "f.txt", "flaky-3\n");
  d.drop("r3", "f.txt", "fatal\nfail\n");
  d.drop("capped", "f.txt", "fail\n");

  {  // flaky-3 with retries: 2 succeeds on its third attempt
    const auto end = d.wait_batch("r2", "f");
    REQUIRE(end.results.size() == 1);
    const auto& r = end.results[0];
    INFO(r.line);
    CHECK(r.status == "ok");
    CHECK(r.attempts == 3);
    CHECK(r.output == "ok after 3");
    CHECK(end.summary.ok == 1);
  }
  {  // flaky-3 with retries: 1 fails after two attempts, with the last attempt's error
    const auto end = d.wait_batch("r1", "f");
    REQUIRE(end.results.size() == 1);
    const auto& r = end.results[0];
    INFO(r.line);
    CHECK(r.status == "failed");
    CHECK(r.attempts == 2);
    CHECK(r.error == "flaky: attempt 2 of 3");
    CHECK(end.summary.failed == 1);
  }
  {  // fatal is never retried; fail is retried 3 times after 100 + 200 + 400 ms
    const auto end = d.wait_batch("r3", "f");
    const auto results = by_id(end.results);
    REQUIRE(results.size() == 2);
    const auto& fatal = results.at("1");
    INFO(fatal.line);
    CHECK(fatal.status == "failed");
    CHECK(fatal.attempts == 1);
    CHECK(fatal.error == "fatal on purpose");
    CHECK(fatal.ms < 100.0);  // no backoff was waited
    const auto& fail = results.at("2");
    INFO(fail.line);
    CHECK(fail.status == "failed");
    CHECK(fail.attempts == 4);
    CHECK(fail.error == "failed on purpose");
    // Doubling: 100 + 200 + 400 = 700 ms. A constant backoff would give 300, tripling 1300.
    CHECK(fail.ms >= 700.0);
    CHECK(fail.ms < 1250.0);
  }
  {  // max_backoff caps the doubling: 100 + 150 + 150 ms
    const auto end = d.wait_batch("capped", "f");
    REQUIRE(end.results.size() == 1);
    const auto& r = end.results[0];
    INFO(r.line);
    CHECK(r.status == "failed");
    CHECK(r.attempts == 4);
    CHECK(r.ms >= 400.0);
    CHECK(r.ms < 650.0);  // uncapped it would be 700
  }
}

TEST_CASE("timeouts: an attempt past its deadline ends `timeout`", "[integration][timeout]") {
  Daemon d(slow_pool("slow", "    timeout: 200ms\n", "2s") +
           "  echo:\n    plugin: echo\n    timeout: 200ms\n    config:\n      delay: 2s\n" +
           slow_pool("late", "    timeout: 200ms\n", "400ms") +
           slow_pool("again", "    timeout: 200ms\n    retries: 1\n    backoff: 10ms\n", "2s"));
  d.start();
  d.drop("slow", "t.txt", "sleep\n");
  d.drop("echo", "t.txt", "hello\n");
  // Returns ok at 400 ms, past its 200 ms deadline (but before the worker would be abandoned).
  d.drop("late", "t.txt", "ignore-deadline\n");
  // A timeout is retried like a failure.
  d.drop("again", "t.txt", "sleep\n");
  for (const char* pool : {"slow", "echo", "late", "again"}) {
    const auto end = d.wait_batch(pool, "t", seconds(10));
    REQUIRE(end.results.size() == 1);
    const auto& r = end.results[0];
    INFO(pool << ": " << r.line);
    const int attempts = std::string(pool) == "again" ? 2 : 1;
    CHECK(r.status == "timeout");
    CHECK(r.attempts == attempts);
    CHECK(r.error);
    CHECK_FALSE(r.output);
    CHECK(r.ms >= 200.0 * attempts);
    CHECK(r.ms < 1000.0 * attempts);  // the deadline was seen; 2 s were not slept
    CHECK(end.summary.timeout == 1);
    CHECK(end.summary.has_first_error);
  }
}

TEST_CASE("a processor that ignores its deadline is abandoned after 1 s and the pool goes on",
          "[integration][timeout][abandon]") {
  Daemon d(slow_pool("stuck", "    workers: 1\n    timeout: 200ms\n", "10s"));
  d.start();
  // One worker: the jobs behind the stuck one only run if a fresh worker replaces it.
  const auto dropped = d.drop("stuck", "s.txt", "ignore-deadline\nflaky-1\nflaky-1\nflaky-1\n");
  const auto end = d.wait_batch("stuck", "s", seconds(9));
  const double took_ms = ms_between(dropped, end.seen);

  CHECK(end.folder == "done");
  const auto results = by_id(end.results);
  REQUIRE(results.size() == 4);
  const auto& stuck = results.at("1");
  INFO(stuck.line);
  CHECK(stuck.status == "timeout");
  CHECK(stuck.attempts == 1);
  CHECK(stuck.error);
  CHECK(stuck.ms >= 1150.0);  // the deadline (200 ms) plus the 1 s of grace
  CHECK(stuck.ms < 3000.0);
  for (const char* id : {"2", "3", "4"}) {
    const auto& r = results.at(id);
    INFO(r.line);
    CHECK(r.status == "ok");
    CHECK(r.output == "ok after 1");
  }
  CHECK(end.summary.timeout == 1);
  CHECK(end.summary.ok == 3);
  CHECK(took_ms < 5000.0);  // long before the 10 s the stuck processor sleeps
  CHECK_FALSE(log_line_with(d.log(), {"abandon"}).empty());

  // The pool still has its worker: a new batch runs while the abandoned one still sleeps.
  d.drop("stuck", "after.txt", "flaky-1\n");
  const auto after = d.wait_batch("stuck", "after", seconds(5));
  CHECK(after.summary.ok == 1);
}

TEST_CASE("one processor per worker: a batch is run by at most `workers` processors",
          "[integration][processors]") {
  // fx_counter outputs the serial number of the processor that ran the job.
  Daemon d("  counted:\n    plugin: fx_counter\n    workers: 2\n");
  d.start();
  d.drop("counted", "c.txt", text_batch(500, [](int i) { return std::to_string(i); }));
  const auto end = d.wait_batch("counted", "c");
  REQUIRE(end.results.size() == 500);
  std::set<std::string> processors;
  for (const auto& r : end.results) {
    if (r.output) {
      processors.insert(*r.output);
    }
  }
  INFO("processors seen: " << processors.size());
  CHECK(end.summary.ok == 500);
  CHECK(processors.size() >= 1);
  CHECK(processors.size() <= 2);
}

TEST_CASE("rate: 1,000 jobs at 500/s take about 2 s", "[integration][rate]") {
  Daemon d("  rated:\n    plugin: echo\n    workers: 4\n    rate: 500/s\n");
  d.start();
  const auto dropped =
      d.drop("rated", "r.txt", text_batch(1000, [](int i) { return "job " + std::to_string(i); }));
  const auto end = d.wait_batch_summary("rated", "r", seconds(20));
  const double took_ms = ms_between(dropped, end.seen);
  INFO(end.summary.text);
  CHECK(end.summary.ok == 1000);
  // 1,000 starts, one every 2 ms: the last one 1,998 ms after the first.
  CHECK(took_ms >= 1900.0);
  CHECK(end.summary.seconds >= 1.9);
  CHECK(took_ms < 6000.0);  // a cap of 500/s, not far less
}

TEST_CASE("a processor that throws: the job fails with the exception's text, the worker goes on",
          "[integration][throw]") {
  Daemon d("  thrower:\n    plugin: fx_throwing_processor\n    workers: 1\n");
  d.start();
  d.drop("thrower", "t.txt", "a\nthrow-me\nb\nthrow-int\nc\n");
  const auto end = d.wait_batch("thrower", "t");
  CHECK(end.folder == "done");
  const auto results = by_id(end.results);
  REQUIRE(results.size() == 5);
  for (auto [id, out] : {std::pair{"1", "a"}, std::pair{"3", "b"}, std::pair{"5", "c"}}) {
    const auto& r = results.at(id);
    INFO(r.line);
    CHECK(r.status == "ok");
    CHECK(r.output == out);
  }
  const auto& thrown = results.at("2");
  INFO(thrown.line);
  CHECK(thrown.status == "failed");
  CHECK(thrown.error == "processor exploded: throw-me");
  const auto& odd = results.at("4");  // throws an int: no text, still a failed attempt
  INFO(odd.line);
  CHECK(odd.status == "failed");
  REQUIRE(odd.error);
  CHECK_FALSE(odd.error->empty());
  CHECK(end.summary.ok == 3);
  CHECK(end.summary.failed == 2);
}

}  // namespace
}  // namespace barista::itest
