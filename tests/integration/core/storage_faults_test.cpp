// Storage faults that pass, injected for real with libfiu (Debian's fiu-utils): baristad runs
// under `fiu-run -x`, random failures (EIO) of write, pwrite, fsync, fdatasync, rename and open
// are switched on while batches arrive, then off again in the same process with `fiu-ctrl`.
// Every batch must then end without a restart, with exactly one result per job
// (docs/crash-safety.md#storage-faults).
#include "tests/integration/core/core_support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace barista::itest {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFiuRun = "/usr/bin/fiu-run";
constexpr const char* kFiuCtrl = "/usr/bin/fiu-ctrl";

// The storage calls that fail, and how often, as in a bad hour of a failing disk.
const std::vector<std::pair<std::string, double>>& fault_points() {
  static const std::vector<std::pair<std::string, double>> points = {
      {"posix/io/rw/write", 0.01},      {"posix/io/rw/pwrite", 0.02},  {"posix/io/sync/fsync", 0.1},
      {"posix/io/sync/fdatasync", 0.1}, {"posix/io/dir/rename", 0.05}, {"posix/io/oc/open", 0.02},
  };
  return points;
}

void fiu_ctrl(const Daemon& d, const fs::path& fifo, const std::string& command) {
  const auto r =
      run_program({kFiuCtrl, "-f", fifo.string(), "-c", command, std::to_string(d.pid())});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
}

// The source file name each finished batch came from (its batch.json), by folder.
std::map<std::string, fs::path> finished_by_source(const Daemon& d) {
  std::map<std::string, fs::path> out;
  for (const char* folder : {"done", "failed"}) {
    for (const auto& e : fs::directory_iterator(d.pool_dir("echo") / folder)) {
      const auto meta = slurp(e.path() / "batch.json");
      const auto at = meta.find(R"("source":")");
      REQUIRE(at != std::string::npos);
      const auto from = at + 10;
      const auto source = meta.substr(from, meta.find('"', from) - from);
      INFO("batch " << e.path().string() << " from " << source);
      CHECK(out.emplace(source, e.path()).second);  // no input became two batches
    }
  }
  return out;
}

}  // namespace

TEST_CASE(
    "storage faults that pass: every batch ends once they stop, one result per job, no "
    "restart",
    "[faults]") {
  if (testing::kSanitized) {
    // libfiu's preload library would come before the sanitizer's runtime, which refuses that.
    WARN("skipped under a sanitizer");
    return;
  }
  REQUIRE(fs::exists(kFiuRun));  // fiu-utils: scripts/install-deps
  Daemon d("  echo:\n    plugin: echo\n    workers: 4\n    queue: 256\n");
  const auto fifo = d.root() / "fiu";
  d.set_launcher({kFiuRun, "-x", "-f", fifo.string()});
  d.start();
  const auto pid = d.pid();

  for (const auto& [name, p] : fault_points()) {
    fiu_ctrl(
        d, fifo,
        "enable_random name=" + name + ",probability=" + std::to_string(p) + ",failinfo=5");  // EIO
  }
  constexpr int kBatches = 20;
  constexpr int kJobs = 2000;
  for (int b = 1; b <= kBatches; ++b) {
    d.drop("echo", "b" + std::to_string(b) + ".txt", text_batch(kJobs, [b](int i) {
             return "b" + std::to_string(b) + " job " + std::to_string(i);
           }));
    std::this_thread::sleep_for(milliseconds(100));
  }
  std::this_thread::sleep_for(milliseconds(2000));
  for (const auto& [name, p] : fault_points()) {
    fiu_ctrl(d, fifo, "disable name=" + name);
  }
  const auto faults_off = Clock::now();

  // Everything moves on within a few seconds, in the same process.
  const auto inbox_and_active_empty = [&] {
    return fs::is_empty(d.inbox("echo")) && fs::is_empty(d.pool_dir("echo") / "active") &&
           finished_by_source(d).size() == static_cast<std::size_t>(kBatches);
  };
  {
    INFO(d.log_tail());
    REQUIRE(d.wait_until(inbox_and_active_empty, milliseconds(30'000)));
  }
  CHECK(d.pid() == pid);  // no restart
  {
    INFO("all batches ended "
         << std::chrono::duration_cast<milliseconds>(Clock::now() - faults_off).count()
         << " ms after the faults stopped");
    const auto log = d.log();
    const auto count = [&](std::string_view what) {
      std::size_t n = 0;
      for (auto at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) {
        ++n;
      }
      return n;
    };
    INFO("outages logged: " << count("storage failing")
                            << ", ended: " << count("storage works again") << ", claims failed: "
                            << count("cannot claim") << ", rewrites after a failed fsync: "
                            << count("again after a failed fsync"));
    CHECK(count("storage failing") > 0);  // the faults did hit
  }

  const auto finished = finished_by_source(d);
  for (int b = 1; b <= kBatches; ++b) {
    const auto source = "b" + std::to_string(b) + ".txt";
    INFO(source);
    REQUIRE(finished.count(source) == 1);
    const auto& dir = finished.at(source);
    const auto summary = read_summary(dir / "summary.json");
    CHECK(summary.state == "done");
    CHECK(summary.jobs == kJobs);
    CHECK(summary.ok == kJobs);
    const auto results = by_id(read_results(dir / "results.jsonl"));  // throws on a repeated id
    REQUIRE(results.size() == static_cast<std::size_t>(kJobs));
    for (int i = 1; i <= kJobs; ++i) {
      const auto& r = results.at(std::to_string(i));
      CHECK(r.status == "ok");
      CHECK(r.output == "b" + std::to_string(b) + " job " + std::to_string(i));
    }
  }
}

}  // namespace barista::itest
