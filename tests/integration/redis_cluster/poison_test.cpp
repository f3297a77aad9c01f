// A poison job in a pool shared through Redis (docs/several-machines.md): a job that crashes every
// daemon that runs it is given up once it has been delivered more than max_crashes + 1 times, with
// a `failed` result "crashed N times", and the batch still ends.

#include "tests/integration/redis_cluster/cluster_support.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <string>

namespace barista::itest::cluster {
namespace {

using namespace std::chrono_literals;

constexpr const char* kCrashed = "crashed 2 times";  // max_crashes: 1

PoolOptions crashing_pool() {
  PoolOptions options;
  options.plugin = "fx_crash";  // segfaults the daemon on the payload "segv"
  options.plugin_config = "";
  options.workers = 2;
  options.max_crashes = 1;
  return options;
}

std::string submit_with_poison(Cluster& c, int jobs, int poison) {
  return c.submit("poison", jobs,
                  [poison](int i) { return i == poison ? std::string("segv") : job_payload(i); });
}

// Starts daemon `i` again each time it dies, until batch `id` ends. Returns how many times it
// died; fails the test when the batch has not ended after `max_runs` starts.
int run_through_crashes(Cluster& c, std::size_t i, const std::string& id, int max_runs) {
  auto& d = c.daemon(i);
  int crashes = 0;
  for (int run = 1; run <= max_runs; ++run) {
    if (!d.running()) {
      d.spawn();
    }
    const auto until = Clock::now() + 60s;
    while (Clock::now() < until) {
      if (const auto code = d.wait_exit(20ms)) {
        INFO(d.log_tail());
        // A segfault (under a sanitizer, its report ends in exit 1 or SIGABRT).
        CHECK((kSanitized ? *code != 0 : *code == 128 + SIGSEGV));
        ++crashes;
        break;
      }
      if (const auto rec = c.record(id); rec && rec->ended()) {
        return crashes;
      }
    }
    REQUIRE(Clock::now() < until);
  }
  FAIL("batch '" << id << "' did not end after " << max_runs << " starts:\n" << c.logs());
  return crashes;
}

// The batch is done with one result per job; the poison job failed "crashed 2 times" (attempts:
// the two crashes); every other job is ok or, at worst, given up the same way. Returns the
// results by job number.
std::vector<JobResult> check_poison_given_up(Cluster& c, const std::string& id, int jobs,
                                             int poison) {
  const auto rec = c.wait_end(id, 10s);
  {
    INFO(redis::summary_json(rec));
    CHECK(rec.state == "done");
    CHECK(rec.total == static_cast<std::uint64_t>(jobs));
    CHECK(rec.counts.done == static_cast<std::uint64_t>(jobs));
    CHECK(rec.counts.ok + rec.counts.failed == static_cast<std::uint64_t>(jobs));
    CHECK(rec.counts.failed >= 1);
    CHECK(rec.first_error == kCrashed);
  }
  auto by_number = one_result_per_job(c.results(id), jobs);
  const auto& p = by_number.at(static_cast<std::size_t>(poison) - 1);
  INFO(p.line);
  CHECK(p.status == "failed");
  CHECK(p.error == kCrashed);
  CHECK(p.attempts == 2);
  Problems problems;
  for (std::size_t k = 0; k < by_number.size(); ++k) {
    const auto& r = by_number[k];
    if (r.line.empty()) {
      continue;  // missing: one_result_per_job() reported it
    }
    const bool ok = r.status == "ok" && r.output == job_payload(static_cast<int>(k) + 1);
    if (ok || (r.status == "failed" && r.error == kCrashed)) {
      continue;
    }
    problems.add(r.line);
  }
  INFO(problems.text());
  CHECK(problems.count() == 0);
  CHECK(c.pending_total() == 0);
  CHECK(c.stream_length() == 0);
  return by_number;
}

TEST_CASE("redis cluster: a poison job restarted under the same name fails 'crashed 2 times'",
          "[integration][redis][cluster]") {
  if (!have_redis_server()) {
    return;
  }
  Cluster c({crashing_pool()});
  constexpr int kJobs = 2'000;
  constexpr int kPoison = 700;
  const auto id = submit_with_poison(c, kJobs, kPoison);
  // Delivered once: crash; twice (own pending after the restart): crash; a third time is more
  // than max_crashes + 1: given up without running.
  CHECK(run_through_crashes(c, 0, id, 5) == 2);
  check_poison_given_up(c, id, kJobs, kPoison);
}

TEST_CASE("redis cluster: a poison job taken over from daemon to daemon is given up",
          "[integration][redis][cluster]") {
  if (!have_redis_server()) {
    return;
  }
  Cluster c(three(crashing_pool()));  // claim_after 1s
  c.start_all();
  constexpr int kJobs = 3'000;
  constexpr int kPoison = 1'500;
  const auto id = submit_with_poison(c, kJobs, kPoison);
  // Nobody restarts the daemons: the one that got the job dies, a second one takes it over
  // after claim_after and dies, the third one gives it up.
  c.wait_end(id, 60s);
  int died = 0;
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (const auto code = c.daemon(i).wait_exit(0ms)) {
      CHECK((kSanitized ? *code != 0 : *code == 128 + SIGSEGV));
      ++died;
    }
  }
  INFO(c.logs());
  CHECK(died == 2);
  check_poison_given_up(c, id, kJobs, kPoison);
}

// The delivery count counts reads, not runs: entries delivered before (a crashed daemon's own
// pending ones, or a silent consumer's) are taken one at a time, each alone at start-up, so that
// only the job that was running is charged with a crash (docs/reference.md#poison-jobs: every other
// job runs normally). Same scenario as above.
TEST_CASE("redis cluster: jobs queued beside a poison job are not given up with it",
          "[integration][redis][cluster]") {
  if (!have_redis_server()) {
    return;
  }
  Cluster c({crashing_pool()});
  constexpr int kJobs = 2'000;
  constexpr int kPoison = 700;
  const auto id = submit_with_poison(c, kJobs, kPoison);
  run_through_crashes(c, 0, id, 5);
  const auto by_number = check_poison_given_up(c, id, kJobs, kPoison);
  Problems innocents_failed;
  for (const auto& r : by_number) {
    if (r.id != std::to_string(kPoison) && r.status != "ok") {
      innocents_failed.add(r.line);
    }
  }
  INFO(innocents_failed.text());
  CHECK(innocents_failed.count() == 0);
}

}  // namespace
}  // namespace barista::itest::cluster
