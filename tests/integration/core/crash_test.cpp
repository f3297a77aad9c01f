// Crashes and kills (docs/crash-safety.md: crash safety and poison jobs): a job that takes the
// daemon down is run alone after each crash until it is known for certain, then given up; every
// other job still gets exactly one result; kill -9 at any moment loses nothing.

#include "tests/integration/core/core_support.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace barista::itest {
namespace {

namespace fs = std::filesystem;

bool ended(const Daemon& d, const std::string& pool, const std::string& id) {
  return fs::exists(d.pool_dir(pool) / "done" / id / "summary.json") ||
         fs::exists(d.pool_dir(pool) / "failed" / id / "summary.json");
}

// Starts the daemon again each time it dies, until batch `id` ends. Returns how many times it
// died; fails the test after `max_runs` starts.
int run_through_crashes(Daemon& d, const std::string& pool, const std::string& id, int max_runs) {
  int crashes = 0;
  for (int run = 1; run <= max_runs; ++run) {
    if (!d.running()) {
      d.spawn();
    }
    const auto until = Clock::now() + seconds(60);
    while (Clock::now() < until) {
      if (const auto code = d.wait_exit(milliseconds(20))) {
        INFO(d.log_tail());
        CHECK(*code != 0);  // a crash (under ASan, its report ends in SIGABRT)
        ++crashes;
        break;
      }
      if (ended(d, pool, id)) {
        return crashes;
      }
    }
    REQUIRE(Clock::now() < until);
  }
  FAIL("batch '" << id << "' did not end after " << max_runs << " starts:\n" << d.log_tail());
  return crashes;
}

TEST_CASE("a job that segfaults the daemon fails after max_crashes; the rest of its batch runs",
          "[integration][crash]") {
  Daemon d("  poison:\n    plugin: fx_crash\n    workers: 2\n");  // max_crashes: 2 (default)
  constexpr int kJobs = 10'000;
  constexpr int kPoison = 5'000;
  d.start();
  d.drop("poison", "mixed.txt", text_batch(kJobs, [](int i) {
           return i == kPoison ? std::string("segv") : "job " + std::to_string(i);
         }));
  const int crashes = run_through_crashes(d, "poison", "mixed", 5);
  // The first crash may find it running beside another job; the second is with it alone.
  CHECK(crashes == 2);
  const auto end = d.wait_batch("poison", "mixed");
  CHECK(end.folder == "done");
  CHECK(end.summary.state == "done");
  CHECK(end.summary.jobs == kJobs);
  CHECK(end.summary.ok == kJobs - 1);
  CHECK(end.summary.failed == 1);
  CHECK(end.summary.first_error_id == std::to_string(kPoison));
  CHECK(end.summary.first_error == "crashed the daemon 2 times");
  REQUIRE(end.results.size() == static_cast<std::size_t>(kJobs));
  const auto results = by_id(end.results);
  REQUIRE(results.size() == static_cast<std::size_t>(kJobs));  // one result per id
  const auto& poison = results.at(std::to_string(kPoison));
  CHECK(poison.status == "failed");
  CHECK(poison.error == "crashed the daemon 2 times");
  CHECK(poison.attempts == 2);
  CHECK(results.at("4999").output == "job 4999");
  CHECK(d.log().find("job '5000' crashed the daemon 2 times: not run again") != std::string::npos);
  // The crash records travel with the batch.
  CHECK(slurp(end.dir / "crashes").find("5000 2 alone") != std::string::npos);
}

TEST_CASE("under cancel_all a poison job cancels its batch; other pools run on",
          "[integration][crash]") {
  // One worker: the job is alone at its first crash, so max_crashes: 1 gives it up at once.
  Daemon d(
      "  strict:\n    plugin: fx_crash\n    workers: 1\n    on_error: cancel_all\n"
      "    max_crashes: 1\n"
      "  other:\n    plugin: echo\n    workers: 1\n");
  d.start();
  d.drop("strict", "doomed.txt", text_batch(200, [](int i) {
           return i == 10 ? std::string("abort") : "job " + std::to_string(i);
         }));
  CHECK(run_through_crashes(d, "strict", "doomed", 3) == 1);
  const auto end = d.wait_batch("strict", "doomed");
  CHECK(end.folder == "failed");
  CHECK(end.summary.state == "cancelled");
  CHECK(end.summary.first_error_id == "10");
  CHECK(end.summary.first_error == "crashed the daemon 1 times");
  CHECK(end.results.size() == 200);
  CHECK(by_id(end.results).size() == 200);
  CHECK(end.summary.ok + end.summary.failed + end.summary.cancelled == 200);
  CHECK(end.summary.failed == 1);
  // The daemon is well and its other pool works.
  d.drop("other", "after.txt", "a\nb\n");
  CHECK(d.wait_batch("other", "after").summary.ok == 2);
}

TEST_CASE("kill -9 at 20 random moments of a 100,000-job batch: one result per job",
          "[integration][crash]") {
  Daemon d("  echo:\n    plugin: echo\n    workers: 8\n    config:\n      delay: 1ms\n");
  constexpr int kJobs = 100'000;
  d.start();
  d.drop_with("echo", "big.txt", [](std::FILE* f) {
    for (int i = 1; i <= kJobs; ++i) {
      std::fprintf(f, "job %d\n", i);
    }
  });
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> pause_ms(0, 400);
  int kills = 0;
  while (kills < 20 && !ended(d, "echo", "big")) {
    if (!d.running()) {
      d.start();
    }
    const int ms = pause_ms(random);
    std::this_thread::sleep_for(milliseconds(ms));
    if (ended(d, "echo", "big")) {
      break;
    }
    d.kill9();
    ++kills;
  }
  INFO("kills: " << kills);
  CHECK(kills == 20);  // the batch was still running at every kill
  d.start();
  const auto end = d.wait_batch("echo", "big", seconds(120));
  CHECK(end.folder == "done");
  Problems problems;
  std::vector<int> seen(kJobs + 1, 0);
  std::int64_t ok = 0;
  std::int64_t failed = 0;
  for (const auto& r : end.results) {
    const int i = std::stoi(r.id);
    if (i < 1 || i > kJobs || ++seen[static_cast<std::size_t>(i)] > 1) {
      problems.add("unexpected or repeated id: " + r.line);
      continue;
    }
    if (r.status == "ok") {
      ++ok;
      if (r.output != "job " + r.id) {
        problems.add("wrong output: " + r.line);
      }
    } else if (r.status == "failed" && r.error.value_or("").starts_with("crashed the daemon")) {
      ++failed;  // a kill can land twice on a job running alone: then it is given up
    } else {
      problems.add("unexpected result: " + r.line);
    }
  }
  INFO(problems.text());
  CHECK(problems.empty());
  CHECK(end.results.size() == static_cast<std::size_t>(kJobs));
  CHECK(end.summary.jobs == kJobs);
  CHECK(end.summary.ok == ok);
  CHECK(end.summary.failed == failed);
  CHECK(ok + failed == kJobs);
}

// Fills the file system of `dir` with one file until it has no room left; the file's path.
fs::path fill_up(const fs::path& dir) {
  const auto filler = dir / "filler";
  const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  const std::string block(64 * 1024, 'f');
  // Big blocks, then small ones: not even a page is left.
  for (const std::size_t size : {block.size(), std::size_t{4096}, std::size_t{1}}) {
    while (::write(fd, block.data(), size) == static_cast<ssize_t>(size)) {
    }
  }
  ::close(fd);
  return filler;
}

TEST_CASE("a full disk pauses the pool, loses nothing, and it resumes when space returns",
          "[integration][crash][disk]") {
  Daemon d("  echo:\n    plugin: echo\n    workers: 2\n    config:\n      delay: 1ms\n");
  // The spool on a small file system of its own, so that it can be filled.
  fs::create_directories(d.spool());
  if (::mount("barista-test", d.spool().c_str(), "tmpfs", 0, "size=16m,mode=0755") != 0) {
    WARN("skipped: cannot mount a small tmpfs for the spool: " << std::strerror(errno));
    return;
  }
  struct Unmount {
    fs::path path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{d.spool()};
  d.start();
  constexpr int kJobs = 20'000;
  d.drop("echo", "jobs.txt", text_batch(kJobs, [](int i) { return "job " + std::to_string(i); }));
  const auto results = d.active("echo", "jobs") / "results.jsonl";
  REQUIRE(d.wait_until([&] { return count_lines(results) >= 500; }, seconds(20)));

  const auto filler = fill_up(d.spool());
  REQUIRE(d.wait_log("pool 'echo': storage failing (cannot write results: No space left on device)",
                     seconds(10)));
  // status says so while it lasts: a STORAGE column, and "storage_error" in its JSON.
  const auto table = run_barista({"--socket", d.socket().string(), "status"});
  CHECK(table.exit_code == 0);
  CHECK_THAT(table.out, Catch::Contains("STORAGE"));
  CHECK_THAT(table.out, Catch::Contains("failing: cannot write results: No space left on device"));
  const auto json = run_barista({"--socket", d.socket().string(), "status", "--json"});
  CHECK_THAT(json.out,
             Catch::Contains(R"("storage_error":"cannot write results: No space left on device")"));
  // Paused: the results file holds whole, valid lines only, and stops growing.
  std::this_thread::sleep_for(milliseconds(300));
  const auto paused = read_results(results);  // throws on a torn or invalid line
  std::this_thread::sleep_for(milliseconds(500));
  CHECK(read_results(results).size() == paused.size());
  CHECK_FALSE(fs::exists(d.active("echo", "jobs") / "summary.json"));
  // A batch dropped meanwhile waits in the inbox.
  fs::remove(filler);
  d.drop("echo", "later.txt", "x\ny\n");
  const auto filler2 = fill_up(d.spool());
  std::this_thread::sleep_for(milliseconds(1500));
  CHECK(fs::exists(d.inbox("echo") / "later.txt"));

  fs::remove(filler2);
  REQUIRE(d.wait_log("pool 'echo': storage works again after", seconds(10)));
  CHECK_THAT(run_barista({"--socket", d.socket().string(), "status"}).out,
             !Catch::Contains("STORAGE"));
  const auto end = d.wait_batch("echo", "jobs", seconds(60));
  CHECK(end.folder == "done");
  CHECK(end.summary.ok == kJobs);
  CHECK(end.results.size() == static_cast<std::size_t>(kJobs));
  CHECK(by_id(end.results).size() == static_cast<std::size_t>(kJobs));
  CHECK(d.wait_batch("echo", "later").summary.ok == 2);
}

}  // namespace
}  // namespace barista::itest
