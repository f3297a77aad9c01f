// `barista status [--json]` and `barista cancel ID` (docs/reference.md#barista-status,
// #barista-cancel, #error-policies).

#include "tests/integration/cli/cli_support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

namespace barista::itest::cli {
namespace {

namespace fs = std::filesystem;

// Two pools; `slow` runs one batch of five 30 s jobs on its two workers: two busy, three queued.
struct SlowBatch {
  Daemon d{pool("idle", "echo", 3) +
           pool("slow", "fx_slow", 2, "    on_error: cancel_all\n    config:\n      ms: 30s\n")};
  TempDir tmp;

  SlowBatch() {
    d.start();
    write_file(tmp.path() / "long.txt", "a\nb\nc\nd\ne\n");
    const auto r = run_cli(with_socket(d, {"submit", "slow", (tmp.path() / "long.txt").string()}));
    REQUIRE(r.exit_code == 0);
    // Until both workers picked a job, the numbers move.
    REQUIRE(d.wait_until(
        [&] {
          return run_cli(with_socket(d, {"status", "--json"})).out.find(R"("busy":2)") !=
                 std::string::npos;
        },
        seconds(10)));
  }
};

TEST_CASE("status --json has exactly the documented keys and the live numbers",
          "[integration][cli]") {
  SlowBatch s;
  const auto r = run_cli(with_socket(s.d, {"status", "--json"}));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  // Pools by name; every documented key and no other, in its order.
  CHECK(
      r.out ==
      R"({"pools":[)"
      R"({"name":"idle","plugin":"echo","workers":3,"busy":0,"queued":0,"on_error":"continue"},)"
      R"({"name":"slow","plugin":"fx_slow","workers":2,"busy":2,"queued":3,"on_error":"cancel_all"}],)"
      R"("batches":[{"batch":"long","pool":"slow","done":0,"total":5,"failed":0}]})"
      "\n");
  CHECK(run_cli(with_socket(s.d, {"cancel", "long"})).exit_code == 0);
}

TEST_CASE("status shows a readable table", "[integration][cli]") {
  SlowBatch s;
  const auto r = run_cli(with_socket(s.d, {"status"}));
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK(r.out ==
        "POOL  PLUGIN   WORKERS  BUSY  QUEUED  ON_ERROR\n"
        "idle  echo           3     0       0  continue\n"
        "slow  fx_slow        2     2       3  cancel_all\n"
        "\n"
        "BATCH  POOL  DONE/TOTAL  FAILED\n"
        "long   slow         0/5       0\n");
  CHECK(run_cli(with_socket(s.d, {"cancel", "long"})).exit_code == 0);
  // No batch left: said so.
  REQUIRE(s.d.wait_batch_summary("slow", "long").folder == "failed");
  const auto after = run_cli(with_socket(s.d, {"status"}));
  CHECK(after.out.ends_with("\nno active batches\n"));
  const auto json = run_cli(with_socket(s.d, {"status", "--json"}));
  CHECK(json.out.ends_with(R"("batches":[]})"
                           "\n"));
}

TEST_CASE("cancel ends a running batch in failed/ as cancelled", "[integration][cli]") {
  SlowBatch s;
  const auto started = Clock::now();
  const auto r = run_cli(with_socket(s.d, {"cancel", "long"}));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "batch 'long' cancelled\n");
  const auto end = s.d.wait_batch("slow", "long", milliseconds(5000));
  // 30 s jobs: cancelled at once rather than run to the end.
  CHECK(Clock::now() - started < seconds(5));
  CHECK(end.folder == "failed");
  CHECK(end.summary.state == "cancelled");
  CHECK(end.summary.cancelled == 5);
  CHECK(end.results.size() == 5);
  CHECK(fs::exists(end.dir / "cancelled"));

  SECTION("cancelling it again: it has finished") {
    const auto again = run_cli(with_socket(s.d, {"cancel", "long"}));
    CHECK(again.exit_code == 1);
    CHECK(again.err == "barista: batch 'long' has already finished\n");
  }
  SECTION("an unknown batch") {
    const auto unknown = run_cli(with_socket(s.d, {"cancel", "nope"}));
    CHECK(unknown.exit_code == 1);
    CHECK(unknown.out.empty());
    CHECK(unknown.err == "barista: unknown batch 'nope'\n");
  }
}

}  // namespace
}  // namespace barista::itest::cli
