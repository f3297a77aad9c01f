// Three baristad processes share one pool through Redis (docs/several-machines.md): the work is
// spread over them, each job gets exactly one result, and a daemon that dies leaves its pending
// jobs to the others (after claim_after) or, when it comes back under the same consumer name, runs
// them itself before anything else.

#include "tests/integration/redis_cluster/cluster_support.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <set>
#include <string>

namespace barista::itest::cluster {
namespace {

using namespace std::chrono_literals;

// Every job ended ok, once, and its output is its own payload (not another job's).
void check_all_ok(const std::vector<JobResult>& by_number) {
  Problems problems;
  for (std::size_t k = 0; k < by_number.size(); ++k) {
    const auto& r = by_number[k];
    if (r.line.empty()) {
      continue;  // missing: one_result_per_job() reported it
    }
    if (r.status != "ok" || r.attempts != 1 || r.output != job_payload(static_cast<int>(k) + 1)) {
      problems.add("not a plain ok of its own payload: " + r.line);
    }
  }
  INFO(problems.text());
  CHECK(problems.count() == 0);
}

void check_done_all_ok(const redis::BatchRecord& rec, int jobs) {
  INFO(redis::summary_json(rec));
  CHECK(rec.state == "done");
  CHECK(rec.total == static_cast<std::uint64_t>(jobs));
  CHECK(rec.counts.done == static_cast<std::uint64_t>(jobs));
  CHECK(rec.counts.ok == static_cast<std::uint64_t>(jobs));
  CHECK(rec.counts.failed + rec.counts.timeout + rec.counts.cancelled + rec.counts.invalid == 0);
  CHECK_FALSE(rec.first_error_id.has_value());
}

TEST_CASE("redis cluster: three daemons share a 100,000-job batch, one result per job",
          "[integration][redis][cluster]") {
  if (!have_redis_server()) {
    return;
  }
  PoolOptions options;
  options.plugin_config = "";   // echo without delay: the cost is the daemons' and Redis's
  options.claim_after = "30s";  // no daemon dies here: nothing is to be taken over
  Cluster c(three(options));
  c.start_all();
  constexpr int kJobs = 100'000;
  const auto id = c.submit("big", kJobs, job_payload);
  const auto rec = c.wait_end(id, 120s);
  check_done_all_ok(rec, kJobs);
  check_all_ok(one_result_per_job(c.results(id), kJobs));
  // Every daemon ran a share, and together they recorded each job once: no entry was handed
  // to two daemons.
  double sum = 0;
  for (std::size_t i = 0; i < c.size(); ++i) {
    const double ok = c.jobs_metric(i, "ok");
    INFO(Cluster::consumer(i) << " recorded " << ok << " ok results");
    CHECK(ok > 0);
    sum += ok;
  }
  CHECK(sum == kJobs);
  CHECK(c.pending_total() == 0);
  CHECK(c.stream_length() == 0);  // finished entries are deleted
}

TEST_CASE("redis cluster: a daemon killed mid-batch leaves its pending jobs to the others",
          "[integration][redis][cluster]") {
  if (!have_redis_server()) {
    return;
  }
  PoolOptions options;  // echo, 1 ms a job, claim_after 1s
  Cluster c(three(options));
  c.start_all();
  constexpr int kJobs = 20'000;
  const auto id = c.submit("takeover", kJobs, job_payload);
  c.wait_results(id, 3'000, 60s);
  c.daemon(0).kill9();
  // What d1 held when it died: delivered to it, without a result. Nobody restarts it.
  const auto orphans = c.pending_jobs("d1");
  REQUIRE_FALSE(orphans.empty());

  const auto rec = c.wait_end(id, 60s);
  check_done_all_ok(rec, kJobs);
  // d1 is dead: its jobs got their results from d2 and d3.
  INFO(orphans.size() << " jobs were pending for d1 when it was killed");
  check_all_ok(one_result_per_job(c.results(id), kJobs));
  CHECK(c.pending_jobs("d1").empty());  // taken over, run and acknowledged by d2 and d3
  CHECK(c.pending_total() == 0);
  CHECK(c.stream_length() == 0);
}

TEST_CASE("redis cluster: a daemon restarted under its own name runs its pending jobs first",
          "[integration][redis][cluster]") {
  if (!have_redis_server()) {
    return;
  }
  PoolOptions options;  // echo, 1 ms a job, claim_after 1s
  auto pools = three(options);
  // One worker on d1: its results are recorded in the order it takes its jobs.
  pools[0].workers = 1;
  Cluster c(pools);
  c.start_all();
  constexpr int kJobs = 4'000;
  const auto id = c.submit("comeback", kJobs, job_payload);
  c.wait_results(id, 800, 60s);
  // Every daemon dies, d1 last: nobody is left to take d1's pending jobs over. (kill -9, not
  // SIGTERM: see the graceful-stop test below.)
  c.daemon(1).kill9();
  c.daemon(2).kill9();
  c.daemon(0).kill9();
  const auto own = c.pending_jobs("d1");
  REQUIRE_FALSE(own.empty());
  const auto before = c.result_count(id);
  // Work of every kind is waiting: d1's own pending jobs, never-delivered ones, and d2's and
  // d3's pending jobs, which d1 takes over after claim_after.
  REQUIRE(c.stream_length() > c.pending_total());

  c.daemon(0).start();
  const auto rec = c.wait_end(id, 60s);
  check_done_all_ok(rec, kJobs);
  const auto all = c.results(id);
  const auto by_number = one_result_per_job(all, kJobs);
  check_all_ok(by_number);
  // The first results recorded after the restart are exactly d1's pending jobs.
  REQUIRE(all.size() >= before + own.size());
  std::set<std::string> own_ids;
  for (const auto& [stream_id, job] : own) {
    own_ids.insert(job);
  }
  std::set<std::string> first_ids;
  for (std::size_t k = before; k < before + own.size(); ++k) {
    first_ids.insert(all[k].id);
  }
  INFO(own.size() << " jobs were pending for d1; results " << before << ".." << before + own.size()
                  << " after its restart");
  CHECK(first_ids == own_ids);
  CHECK(c.pending_total() == 0);
  CHECK(c.stream_length() == 0);
}

// A stop aborts the queue once: the feeder must not push again after that (it would wait for
// workers that have left, and the daemon would never exit).
TEST_CASE("redis cluster: a busy daemon stopped with SIGTERM exits; the others finish its work",
          "[integration][redis][cluster]") {
  if (!have_redis_server()) {
    return;
  }
  PoolOptions options;  // echo, 1 ms a job, claim_after 1s; shutdown_timeout: 5s
  Cluster c(three(options));
  c.start_all();
  constexpr int kJobs = 20'000;
  const auto id = c.submit("stopped", kJobs, job_payload);
  c.wait_results(id, 3'000, 60s);
  c.daemon(0).signal(SIGTERM);
  const auto code = c.daemon(0).wait_exit(7s);  // 1 ms jobs: well within shutdown_timeout
  {
    INFO(c.logs());
    CHECK(code == 0);
  }
  c.daemon(0).kill9();  // when it hung: its pending jobs go to the others all the same
  const auto rec = c.wait_end(id, 60s);
  check_done_all_ok(rec, kJobs);
  check_all_ok(one_result_per_job(c.results(id), kJobs));
  CHECK(c.pending_total() == 0);
  CHECK(c.stream_length() == 0);
}

}  // namespace
}  // namespace barista::itest::cluster
