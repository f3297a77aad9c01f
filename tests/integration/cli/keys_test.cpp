// Keys, throttles and pauses as a user meets them (docs/reference.md#keys): JSONL keys and their
// bad input, throttled results, `barista pause` / `resume` of a pool and of a key, across a
// restart, and what `barista status` shows of them.

#include "tests/integration/cli/cli_support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace barista::itest::cli {
namespace {

namespace fs = std::filesystem;

// The results recorded so far of batch `id` of `pool`, running or ended.
std::vector<JobResult> results_now(const Daemon& d, const std::string& pool,
                                   const std::string& id) {
  for (const auto* where : {"active", "done", "failed"}) {
    const auto file = d.pool_dir(pool) / where / id / "results.jsonl";
    if (fs::exists(file)) {
      return read_results(file);
    }
  }
  return {};
}

}  // namespace

TEST_CASE("JSONL keys: bad ones are invalid lines; throttles are counted, not retried",
          "[integration][cli][keys]") {
  Daemon d(pool("slow", "fx_slow", 2, "    config:\n      ms: 1ms\n"));
  d.start();
  const std::string long_key(257, 'k');
  d.drop("slow", "k.jsonl",
         R"({"id":"t","key":"a.test","payload":"throttle-100-2"})"
         "\n"
         R"({"id":"long","key":")" +
             long_key +
             R"(","payload":"x"})"
             "\n"
             R"({"id":"num","key":5,"payload":"x"})"
             "\n"
             R"({"id":"edge","key":")" +
             std::string(256, 'k') +
             R"(","payload":"x"})"
             "\n");
  const auto end = d.wait_batch("slow", "k");
  const auto r = by_id(end.results);
  REQUIRE(r.size() == 4);
  INFO(r.at("t").line);
  CHECK(r.at("t").status == "ok");  // retries is 0: a throttle spends none
  CHECK(r.at("t").attempts == 3);
  CHECK(r.at("t").throttled == 2);
  CHECK(r.at("t").ms >= 200.0);
  CHECK(r.at("long").status == "invalid");
  CHECK(r.at("long").error == R"("key" of 257 bytes is longer than 256 bytes)");
  CHECK(r.at("num").status == "invalid");
  CHECK(r.at("num").error == R"("key" must be a string)");
  CHECK(r.at("edge").status == "ok");
  CHECK(r.at("edge").throttled == 0);
}

TEST_CASE("pause and resume a pool: nothing starts, the pause outlives a restart",
          "[integration][cli][keys]") {
  Daemon d(pool("slow", "fx_slow", 2, "    config:\n      ms: 1ms\n"));
  d.start();
  auto r = run_cli(with_socket(d, {"pause", "slow"}));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "pool 'slow' paused\n");
  d.drop("slow", "p.txt", "a\nb\nc\n");
  CHECK_FALSE(d.wait_until([&] { return !results_now(d, "slow", "p").empty(); }, seconds(1)));
  r = run_cli(with_socket(d, {"status"}));
  CHECK(r.out.find("PAUSED") != std::string::npos);
  r = run_cli(with_socket(d, {"status", "--json"}));
  CHECK(r.out.find(R"("paused":true)") != std::string::npos);
  // A restart keeps it paused.
  d.kill9();
  d.start();
  CHECK_FALSE(d.wait_until([&] { return !results_now(d, "slow", "p").empty(); }, seconds(1)));
  CHECK(d.wait_log("paused (barista resume lifts it)", seconds(5)));
  r = run_cli(with_socket(d, {"resume", "slow"}));
  CHECK(r.exit_code == 0);
  CHECK(r.out == "pool 'slow' resumed\n");
  CHECK(d.wait_batch("slow", "p").summary.ok == 3);
}

TEST_CASE("pause a key: its jobs wait, the others run; status names it; resume lets them go",
          "[integration][cli][keys]") {
  Daemon d(pool("slow", "fx_slow", 2, "    config:\n      ms: 1ms\n"));
  d.start();
  CHECK(run_cli(with_socket(d, {"pause", "slow", "--key", "a.test"})).exit_code == 0);
  std::string jobs;
  for (int i = 0; i < 10; ++i) {
    jobs += R"({"id":"a)" + std::to_string(i) +
            R"(","key":"a.test","payload":"x"})"
            "\n";
    jobs += R"({"id":"b)" + std::to_string(i) +
            R"(","key":"b.test","payload":"x"})"
            "\n";
  }
  d.drop("slow", "mix.jsonl", jobs);
  REQUIRE(d.wait_until([&] { return results_now(d, "slow", "mix").size() == 10; }, seconds(10)));
  for (const auto& res : results_now(d, "slow", "mix")) {
    CHECK(res.id.starts_with("b"));
  }
  auto r = run_cli(with_socket(d, {"status", "slow"}));
  INFO(r.out);
  CHECK(r.out.find("keys: a.test") != std::string::npos);
  CHECK(r.out.find("KEY") != std::string::npos);
  CHECK(r.out.find("paused") != std::string::npos);
  r = run_cli(with_socket(d, {"status", "slow", "--json"}));
  CHECK(r.out.find(R"("keys":[{"key":"a.test","in_flight":0,"waiting":10,"paused":true)") !=
        std::string::npos);
  // Bad input: an unknown pool, a key that is not paused.
  r = run_cli(with_socket(d, {"pause", "nope"}));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("unknown pool 'nope'") != std::string::npos);
  r = run_cli(with_socket(d, {"resume", "slow", "--key", "c.test"}));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("key 'c.test' of pool 'slow' is not paused") != std::string::npos);
  r = run_cli(with_socket(d, {"status", "nope"}));
  CHECK(r.exit_code == 1);
  CHECK(run_cli(with_socket(d, {"resume", "slow", "--key", "a.test"})).exit_code == 0);
  const auto end = d.wait_batch("slow", "mix");
  CHECK(end.summary.ok == 20);
}

}  // namespace barista::itest::cli

namespace barista::itest::cli {

TEST_CASE("fair shares: a small batch overtakes a large one; weights divide the workers",
          "[integration][cli][keys]") {
  Daemon d(pool("slow", "fx_slow", 2, "    queue: 8\n    config:\n      ms: 5ms\n"));
  d.start();
  TempDir tmp;
  std::string big;
  for (int i = 0; i < 3000; ++i) {
    big += "x\n";
  }
  write_file(tmp.path() / "big.txt", big);
  write_file(tmp.path() / "heavy.txt", big);
  write_file(tmp.path() / "small.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n");
  REQUIRE(
      run_cli(with_socket(d, {"submit", "slow", (tmp.path() / "big.txt").string()})).exit_code ==
      0);
  REQUIRE(d.wait_until([&] { return results_now(d, "slow", "big").size() >= 50; }, seconds(10)));
  const auto before = results_now(d, "slow", "big").size();
  const auto small =
      run_cli(with_socket(d, {"submit", "--wait", "slow", (tmp.path() / "small.txt").string()}));
  REQUIRE(small.exit_code == 0);
  const auto after = results_now(d, "slow", "big").size();
  INFO("the large batch ran " << after - before << " jobs while the small one ran");
  CHECK(after - before <= 8 + 2 * 8);  // about one queue's worth (8), and the chunks in hand
  // A batch of weight 3 beside one of weight 1 gets about three quarters of the workers.
  REQUIRE(run_cli(with_socket(
                      d, {"submit", "--weight", "3", "slow", (tmp.path() / "heavy.txt").string()}))
              .exit_code == 0);
  REQUIRE(d.wait_until([&] { return results_now(d, "slow", "heavy").size() >= 50; }, seconds(10)));
  const auto big_from = results_now(d, "slow", "big").size();
  const auto heavy_from = results_now(d, "slow", "heavy").size();
  REQUIRE(d.wait_until([&] { return results_now(d, "slow", "heavy").size() >= heavy_from + 600; },
                       seconds(30)));
  const double heavy = static_cast<double>(results_now(d, "slow", "heavy").size() - heavy_from);
  const double light = static_cast<double>(results_now(d, "slow", "big").size() - big_from);
  INFO("weight 3: " << heavy << " jobs, weight 1: " << light);
  CHECK(heavy / std::max(light, 1.0) > 2.0);
  CHECK(heavy / std::max(light, 1.0) < 4.5);
  // Bad input: --weight out of range.
  const auto zero = run_cli(
      with_socket(d, {"submit", "--weight", "0", "slow", (tmp.path() / "small.txt").string()}));
  CHECK(zero.exit_code == 1);
  CHECK(zero.err.find("--weight must be 1 to 1000, not 0") != std::string::npos);
}

}  // namespace barista::itest::cli
