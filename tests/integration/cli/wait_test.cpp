// `barista submit --wait` (docs/reference.md#barista-submit): waits for the batch to end, prints
// its summary, and exits 0 (every job ok), 1 (some failure), 2 (cancelled) or 3 (refused); live
// progress on a terminal; a client that goes away midway does not disturb the daemon.

#include "tests/integration/cli/cli_support.hpp"

#include <catch2/catch.hpp>

#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace barista::itest::cli {
namespace {

namespace fs = std::filesystem;

std::string jobs_file(const TempDir& tmp, const std::string& name, const std::string& content) {
  const auto file = tmp.path() / name;
  write_file(file, content);
  return file.string();
}

std::string repeat_lines(int n, const std::string& line) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += line + "\n";
  }
  return out;
}

// The summary the CLI printed is the batch's summary.json, byte for byte.
void check_printed_summary(Daemon& d, const std::string& pool, const std::string& out,
                           const std::string& id) {
  const auto lines = lines_of(out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == id);
  const auto end = d.wait_batch_summary(pool, id);
  std::string file = slurp(end.dir / "summary.json");
  while (!file.empty() && file.back() == '\n') {
    file.pop_back();
  }
  CHECK(lines[1] == file);
}

TEST_CASE("submit --wait exits 0 when every job is ok", "[integration][cli]") {
  Daemon d(pool("echo", "echo", 2));
  d.start();
  TempDir tmp;
  const auto r = run_cli(with_socket(
      d, {"submit", "--wait", "echo", jobs_file(tmp, "fine.txt", repeat_lines(50, "x"))}));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());  // not a terminal: no progress
  check_printed_summary(d, "echo", r.out, "fine");
  CHECK(r.out.find(R"("state":"done")") != std::string::npos);
  CHECK(r.out.find(R"("ok":50)") != std::string::npos);
}

TEST_CASE("submit --wait exits 1 when a job failed", "[integration][cli]") {
  Daemon d(pool("echo", "echo", 2, "    config:\n      fail_on: bad\n"));
  d.start();
  TempDir tmp;
  const auto r = run_cli(with_socket(
      d, {"submit", "echo", jobs_file(tmp, "mixed.txt", "good\nbad\ngood\n"), "--wait"}));
  INFO(r.err);
  CHECK(r.exit_code == 1);
  check_printed_summary(d, "echo", r.out, "mixed");
  CHECK(r.out.find(R"("failed":1)") != std::string::npos);
}

TEST_CASE("submit --wait exits 2 when the batch is cancelled", "[integration][cli]") {
  SECTION("by on_error: cancel_all") {
    Daemon d(pool("slow", "fx_slow", 2, "    on_error: cancel_all\n    config:\n      ms: 10s\n"));
    d.start();
    TempDir tmp;
    const auto r =
        run_cli(with_socket(d, {"submit", "--wait", "slow",
                                jobs_file(tmp, "doomed.txt", "sleep\nfail\nsleep\nsleep\n")}));
    INFO(r.err);
    CHECK(r.exit_code == 2);
    check_printed_summary(d, "slow", r.out, "doomed");
    CHECK(r.out.find(R"("state":"cancelled")") != std::string::npos);
  }
  SECTION("by barista cancel") {
    Daemon d(pool("slow", "fx_slow", 1, "    config:\n      ms: 10s\n"));
    d.start();
    TempDir tmp;
    CliProcess waiting(
        with_socket(d, {"submit", "--wait", "slow", jobs_file(tmp, "long.txt", "a\nb\n")}));
    REQUIRE(d.wait_until([&] { return waiting.out() == "long\n"; }, seconds(10)));
    const auto cancel = run_cli(with_socket(d, {"cancel", "long"}));
    CHECK(cancel.exit_code == 0);
    const auto r = waiting.wait(seconds(10));
    INFO(r.err);
    CHECK(r.exit_code == 2);
    check_printed_summary(d, "slow", r.out, "long");
  }
}

TEST_CASE("submit --wait is refused with exit 3 for an unknown pool", "[integration][cli]") {
  Daemon d(pool("echo", "echo", 1));
  d.start();
  TempDir tmp;
  const auto r =
      run_cli(with_socket(d, {"submit", "--wait", "nope", jobs_file(tmp, "a.txt", "a\n")}));
  CHECK(r.exit_code == 3);
  CHECK(r.out.empty());
  CHECK(r.err == "barista: unknown pool 'nope' (pools: echo)\n");
}

TEST_CASE("submit --wait on a terminal shows live progress on stderr", "[integration][cli]") {
  TempDir tmp;
  CliOptions tty;
  tty.stderr_tty = true;

  SECTION("a bar with done/total, rate, failures and ETA, redrawn in place, then cleared") {
    // 40 jobs of 50 ms on 2 workers: about a second, five or so redraws.
    Daemon d(pool("echo", "echo", 2, "    config:\n      delay: 50ms\n      fail_on: bad\n"));
    d.start();
    const auto jobs = repeat_lines(38, "x") + "bad\nbad\n";
    const auto r =
        run_cli(with_socket(d, {"submit", "--wait", "echo", jobs_file(tmp, "bar.txt", jobs)}), tty);
    INFO(r.err);
    CHECK(r.exit_code == 1);
    check_printed_summary(d, "echo", r.out, "bar");
    // Each redraw starts with \r and ends by erasing the rest of the line; the last one clears it.
    const auto redraws = std::count(r.err.begin(), r.err.end(), '\r');
    CHECK(redraws >= 3);
    CHECK(r.err.find('\n') == std::string::npos);
    CHECK(r.err.ends_with("\r\x1b[K"));
    static const std::regex kBar(
        R"(bar  \[[#-]+\]  \d+/(40|\d+\+ of 40)  \d+%  (\d+|-) jobs/s  [0-2] failed  ETA (\d+:\d\d|-)\x1b\[K)");
    CHECK(std::regex_search(r.err, kBar));
    CHECK(r.err.find("failed  ETA") != std::string::npos);
    static const std::regex kRate(R"(\d+ jobs/s)");
    CHECK(std::regex_search(r.err, kRate));
  }
  SECTION("the total is shown as N+ while the daemon is still reading the batch") {
    // A small queue keeps the daemon from reading far ahead of the workers.
    Daemon d(pool("echo", "echo", 1, "    queue: 4\n    config:\n      delay: 20ms\n"));
    d.start();
    const auto r = run_cli(with_socket(d, {"submit", "--wait", "echo",
                                           jobs_file(tmp, "long.txt", repeat_lines(60, "x"))}),
                           tty);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    static const std::regex kGrowing(
        R"(long  \[[#-]+\]  \d+/\d+\+ of 60  \d+%  (\d+|-) jobs/s  0 failed  ETA (\d+:\d\d|-))");
    CHECK(std::regex_search(r.err, kGrowing));
  }
}

TEST_CASE("a client that goes away during --wait does not disturb the daemon",
          "[integration][cli]") {
  Daemon d(pool("slow", "fx_slow", 2, "    config:\n      ms: 100ms\n"));
  d.start();
  TempDir tmp;
  const auto jobs = jobs_file(tmp, "steady.txt", repeat_lines(20, "sleep"));
  for (int sig : {SIGKILL, SIGINT}) {
    CliProcess waiting(with_socket(d, {"submit", "--wait", "slow", jobs, "--name",
                                       sig == SIGKILL ? "killed.txt" : "interrupted.txt"}));
    REQUIRE(d.wait_until([&] { return !waiting.out().empty(); }, seconds(10)));
    waiting.signal(sig);
    CHECK(waiting.wait(seconds(5)).exit_code == 128 + sig);
  }
  for (const char* id : {"killed", "interrupted"}) {
    const auto end = d.wait_batch("slow", id);
    CHECK(end.folder == "done");
    CHECK(end.summary.ok == 20);
  }
  // On a terminal, an interrupted --wait erases its bar and says the batch goes on.
  CliOptions tty;
  tty.stderr_tty = true;
  CliProcess watching(with_socket(d, {"submit", "--wait", "slow", jobs, "--name", "watched.txt"}),
                      tty);
  REQUIRE(d.wait_until([&] { return watching.err().find("jobs/s") != std::string::npos; },
                       seconds(10)));
  watching.signal(SIGINT);
  const auto interrupted = watching.wait(seconds(5));
  CHECK(interrupted.exit_code == 128 + SIGINT);
  CHECK(interrupted.err.ends_with(
      "\r\x1b[Kbarista: stopped waiting; batch 'watched' keeps running\r\n"));
  CHECK(d.wait_batch("slow", "watched").summary.ok == 20);

  // Still answering, and a later --wait works.
  const auto status = run_cli(with_socket(d, {"status"}));
  CHECK(status.exit_code == 0);
  const auto again =
      run_cli(with_socket(d, {"submit", "--wait", "slow", jobs, "--name", "again.txt"}));
  CHECK(again.exit_code == 0);
  CHECK(lines_of(again.out).front() == "again");
  CHECK(d.log().find("critical") == std::string::npos);
}

}  // namespace
TEST_CASE("an accepted submit --wait outlives a kill -9 and restart of the daemon",
          "[integration][cli]") {
  Daemon d(pool("slow", "fx_slow", 2, "    config:\n      ms: 200ms\n"));
  d.start();
  TempDir tmp;
  const auto jobs = jobs_file(tmp, "through.txt", repeat_lines(10, "sleep"));
  CliProcess waiting(with_socket(d, {"submit", "--wait", "slow", jobs}));
  REQUIRE(d.wait_until([&] { return !waiting.out().empty(); }, seconds(10)));
  d.kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(waiting.running());  // not "refused": it waits for the daemon to come back
  d.start();
  const auto r = waiting.wait(seconds(60));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "through");
  CHECK(lines[1].find(R"("state":"done")") != std::string::npos);
  CHECK(r.err.find("trying again") != std::string::npos);
  const auto end = d.wait_batch("slow", "through");
  CHECK(end.summary.ok == 10);
}

TEST_CASE("submit --wait exits 4 when the daemon that accepted the batch stays away",
          "[integration][cli]") {
  Daemon d(pool("slow", "fx_slow", 1, "    config:\n      ms: 1s\n"));
  d.start();
  TempDir tmp;
  const auto jobs = jobs_file(tmp, "orphan.txt", repeat_lines(5, "sleep"));
  CliOptions options;
  options.env = {"BARISTA_RECONNECT_FOR=2"};
  CliProcess waiting(with_socket(d, {"submit", "--wait", "slow", jobs}), options);
  REQUIRE(d.wait_until([&] { return !waiting.out().empty(); }, seconds(10)));
  d.kill9();
  const auto r = waiting.wait(seconds(30));
  INFO(r.err);
  CHECK(r.exit_code == 4);  // accepted (its id was printed), outcome unknown: never 3
  CHECK(r.out == "orphan\n");
  CHECK(r.err.find("was accepted, but its outcome could not be learned") != std::string::npos);
  // Nothing is lost: the batch runs when the daemon is back.
  d.start();
  CHECK(d.wait_batch("slow", "orphan").summary.ok == 5);
}

// The threads of process `pid` now (0 once it has gone).
int threads_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("Threads:")) {
      return std::stoi(line.substr(8));
    }
  }
  return 0;
}

// Far more clients at once than the daemon has request threads (16): each is accepted and
// answered with its summary, and waiting costs none of them a thread (the daemon's threads stay
// as many as before the burst).
TEST_CASE("a burst of a thousand submit --wait clients: every one accepted and answered",
          "[integration][cli]") {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr int kClients = 60;  // each CLI is a sanitized process too: fewer, still at once
#else
  constexpr int kClients = 1000;
#endif
  // Each batch takes a worker 20 ms (1,000 take 5 s on 4 workers): the waits pile up past the
  // daemon's request threads.
  Daemon d(pool("slow", "fx_slow", 4, "    config:\n      ms: 20ms\n"));
  d.start();
  TempDir tmp;
  const auto jobs = jobs_file(tmp, "burst.txt", "one\n");
  const int threads_before = threads_of(d.pid());
  std::atomic<int> threads_peak{0};
  std::atomic<bool> burst_over{false};
  std::thread sampler([&] {
    while (!burst_over.load()) {
      threads_peak.store(std::max(threads_peak.load(), threads_of(d.pid())));
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  std::vector<std::unique_ptr<CliProcess>> clients;
  clients.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<CliProcess>(with_socket(
        d, {"submit", "--wait", "slow", jobs, "--name", "b" + std::to_string(i) + ".txt"})));
  }
  int ok = 0;
  int retried = 0;  // waits the daemon refused as busy at first
  for (int i = 0; i < kClients; ++i) {
    const auto r = clients[static_cast<std::size_t>(i)]->wait(seconds(120));
    INFO("client " << i << ": " << r.err);
    const auto lines = lines_of(r.out);
    CHECK(r.exit_code == 0);
    if (r.exit_code == 0 && lines.size() == 2 && lines[0] == "b" + std::to_string(i) &&
        lines[1].find(R"("ok":1)") != std::string::npos) {
      ++ok;
    }
    retried += r.err.find("trying again") != std::string::npos ? 1 : 0;
  }
  burst_over.store(true);
  sampler.join();
  CHECK(ok == kClients);
  INFO("threads before the burst " << threads_before << ", at most " << threads_peak.load());
  CHECK(threads_before > 0);
  CHECK(threads_peak.load() == threads_before);
  WARN(retried << " of " << kClients << " waits were refused as busy at first and tried again; "
               << "the daemon's threads: " << threads_before << " before, " << threads_peak.load()
               << " at most during the burst");
}

}  // namespace barista::itest::cli
