// Faults across a pool shared by three daemons (docs/several-machines.md): a cancel_all failure on
// one daemon stops the batch on all of them, and a Redis server killed mid-batch loses nothing.

#include "tests/integration/redis_cluster/cluster_support.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <thread>

namespace barista::itest::cluster {
namespace {

using namespace std::chrono_literals;

TEST_CASE("redis cluster: a cancel_all failure on one daemon cancels the batch on all",
          "[integration][redis][cluster]") {
  if (!have_redis_server()) {
    return;
  }
  PoolOptions options;
  options.on_error = "cancel_all";
  options.plugin_config = "{delay: 20ms, fail_on: bad}";
  // A queued entry waits up to 256 x 20 ms / 4 here: no take-over of a live daemon's jobs.
  options.claim_after = "10s";
  Cluster c(three(options));
  c.start_all();
  constexpr int kJobs = 6'000;  // 20 ms each on 12 workers: 10 s when nothing stops them
  constexpr auto kJobs64 = static_cast<std::uint64_t>(kJobs);
  constexpr int kBad = 40;
  const auto start = Clock::now();
  const auto id = c.submit(
      "doomed", kJobs, [](int i) { return i == kBad ? std::string("bad") : job_payload(i); },
      /*cancel_all=*/true);
  const auto rec = c.wait_end(id, 30s);
  const double ms = ms_since(start);
  {
    INFO(redis::summary_json(rec));
    CHECK(rec.state == "cancelled");
    CHECK(rec.first_error_id == std::to_string(kBad));
    CHECK(rec.first_error == "payload contains 'bad'");
    CHECK(rec.counts.failed == 1);
    CHECK(rec.counts.timeout + rec.counts.invalid == 0);
    CHECK(rec.counts.ok + rec.counts.cancelled + rec.counts.failed == kJobs64);
    CHECK(rec.counts.done == kJobs64);
    // Stopped, not run out: the whole batch would take 10 s.
    CHECK(ms < 3'000);
    // Only the jobs running or started before the cancel reached every daemon are ok.
    CHECK(rec.counts.ok < kJobs64 / 10);
  }
  const auto by_number = one_result_per_job(c.results(id), kJobs);
  Problems problems;
  int never_started = 0;
  for (const auto& r : by_number) {
    if (r.line.empty()) {
      continue;
    }
    if (r.id == std::to_string(kBad)) {
      if (r.status != "failed" || r.attempts != 1 || r.error != "payload contains 'bad'") {
        problems.add("the failing job: " + r.line);
      }
    } else if (r.status == "cancelled") {
      const bool unstarted = r.attempts == 0;
      never_started += unstarted ? 1 : 0;
      if (r.error != (unstarted ? "batch cancelled before the job started"
                                : "batch cancelled while the job was running")) {
        problems.add("a cancelled job: " + r.line);
      }
    } else if (r.status != "ok" || r.attempts != 1) {
      problems.add("neither ok nor cancelled: " + r.line);
    }
  }
  INFO(problems.text());
  CHECK(problems.count() == 0);
  CHECK(never_started > kJobs / 2);
  // Each daemon stopped its own share: each recorded cancelled results.
  for (std::size_t i = 0; i < c.size(); ++i) {
    INFO(Cluster::consumer(i));
    CHECK(c.jobs_metric(i, "cancelled") > 0);
  }
  CHECK(c.pending_total() == 0);
  CHECK(c.stream_length() == 0);
}

TEST_CASE("redis cluster: Redis killed and restarted mid-batch loses no job",
          "[integration][redis][cluster]") {
  if (!have_redis_server()) {
    return;
  }
  PoolOptions options;          // echo, 1 ms a job
  options.claim_after = "10s";  // no daemon dies: the jobs stay with the daemons that hold them
  // Every write fsynced: what Redis acknowledged survives its kill -9.
  Cluster c(three(options), "always");
  c.start_all();
  constexpr int kJobs = 20'000;
  constexpr auto kJobs64 = static_cast<std::uint64_t>(kJobs);
  const auto id = c.submit("outage", kJobs, job_payload);
  c.wait_results(id, 4'000, 60s);
  c.server().kill9();
  for (std::size_t i = 0; i < c.size(); ++i) {
    INFO(c.logs());
    CHECK(c.daemon(i).wait_log("redis unavailable", 10s));
  }
  std::this_thread::sleep_for(500ms);
  c.server().restart();

  const auto rec = c.wait_end(id, 60s);
  {
    INFO(redis::summary_json(rec));
    CHECK(rec.state == "done");
    CHECK(rec.counts.ok == kJobs64);
    CHECK(rec.counts.done == kJobs64);
  }
  const auto by_number = one_result_per_job(c.results(id), kJobs);
  Problems problems;
  for (std::size_t k = 0; k < by_number.size(); ++k) {
    const auto& r = by_number[k];
    if (!r.line.empty() && (r.status != "ok" || r.output != job_payload(static_cast<int>(k) + 1))) {
      problems.add("not an ok of its own payload: " + r.line);
    }
  }
  INFO(problems.text());
  CHECK(problems.count() == 0);
  for (std::size_t i = 0; i < c.size(); ++i) {
    const auto log = c.daemon(i).log();
    INFO(Cluster::consumer(i) << "'s log:\n" << c.daemon(i).log_tail(3000));
    CHECK_FALSE(c.daemon(i).wait_exit(0ms).has_value());  // it rode the outage out
    CHECK(occurrences(log, "redis unavailable") == 1);    // one outage, logged once
    const auto down = log.find("redis unavailable");
    const auto up = log.rfind("redis reachable again");
    CHECK(up != std::string::npos);
    CHECK((down != std::string::npos && up > down));
  }
  CHECK(c.pending_total() == 0);
  CHECK(c.stream_length() == 0);
}

}  // namespace
}  // namespace barista::itest::cluster
