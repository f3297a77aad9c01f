// Bounded memory (docs/reference.md#bounded-memory, the pool key `queue`): a batch of any size is
// streamed, never held in memory.

#include "tests/integration/core/core_support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace barista::itest {
namespace {

TEST_CASE("a 2,000,000-job batch runs in bounded memory", "[integration][memory]") {
  Daemon d("  echo:\n    plugin: echo\n    workers: 2\n    queue: 64\n");
  d.start();
  // Under a sanitizer a tenth: the point there is the checks, not the size.
  constexpr int kJobs = kSanitized ? 200'000 : 2'000'000;
  constexpr std::uint64_t kLimitKib = 64 * 1024;
  // ~40 MB of input, ~170 MB of results: both far more than the limit.
  d.drop_with("echo", "huge.txt", [](std::FILE* f) {
    for (int i = 1; i <= kJobs; ++i) {
      std::fprintf(f, "payload number %d of the huge batch\n", i);
    }
  });
  std::uint64_t peak_kib = 0;
  REQUIRE(d.wait_until(
      [&] {
        peak_kib = std::max(peak_kib, d.vm_hwm_kib().value_or(0));
        return std::filesystem::exists(d.pool_dir("echo") / "done" / "huge" / "summary.json");
      },
      seconds(150)));
  peak_kib = std::max(peak_kib, d.vm_hwm_kib().value_or(0));
  INFO("baristad's VmHWM: " << peak_kib << " KiB");
  CHECK(peak_kib > 0);
  if (!kSanitized) {
    CHECK(peak_kib < kLimitKib);
  }

  const auto end = d.wait_batch_summary("echo", "huge");
  INFO(end.summary.text);
  CHECK(end.summary.jobs == kJobs);
  CHECK(end.summary.ok == kJobs);
  std::vector<bool> seen(kJobs + 1, false);
  std::size_t lines = 0;
  std::size_t bad = 0;
  for_each_result(end.dir / "results.jsonl", [&](const JobResult& r) {
    ++lines;
    const long i = std::strtol(r.id.c_str(), nullptr, 10);
    if (i < 1 || i > kJobs || seen[static_cast<std::size_t>(i)] || r.status != "ok") {
      ++bad;
      return;
    }
    seen[static_cast<std::size_t>(i)] = true;
  });
  CHECK(lines == static_cast<std::size_t>(kJobs));
  CHECK(bad == 0);
}

}  // namespace
}  // namespace barista::itest
