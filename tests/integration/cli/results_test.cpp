// `barista results ID [--summary]` (docs/reference.md#barista-results): the results so far while
// the batch runs, all of them after, the summary; 1 for an unknown batch.

#include "tests/integration/cli/cli_support.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace barista::itest::cli {
namespace {

TEST_CASE("results prints the results so far, then all of them; --summary the summary",
          "[integration][cli]") {
  // One worker: two jobs fail at once, then one sleeps 30 s, so the batch stays half done.
  Daemon d(pool("slow", "fx_slow", 1, "    config:\n      ms: 30s\n"));
  d.start();
  TempDir tmp;
  write_file(tmp.path() / "half.txt", "fail\nfatal\nsleep\n");
  REQUIRE(
      run_cli(with_socket(d, {"submit", "slow", (tmp.path() / "half.txt").string()})).exit_code ==
      0);

  std::vector<std::string> lines;
  REQUIRE(d.wait_until(
      [&] {
        lines = lines_of(run_cli(with_socket(d, {"results", "half"})).out);
        return lines.size() >= 2;
      },
      seconds(10)));
  REQUIRE(lines.size() == 2);
  const auto first = by_id({parse_result_line(lines[0]), parse_result_line(lines[1])});
  CHECK(first.at("1").status == "failed");
  CHECK(first.at("1").error == "failed on purpose");
  CHECK(first.at("2").error == "fatal on purpose");

  const auto running = run_cli(with_socket(d, {"results", "half", "--summary"}));
  CHECK(running.exit_code == 0);
  CHECK(running.out ==
        R"({"batch":"half","pool":"slow","state":"running","jobs":3,"ok":0,"failed":2,"timeout":0,)"
        R"("cancelled":0,"invalid":0,"read_all":true})"
        "\n");

  REQUIRE(run_cli(with_socket(d, {"cancel", "half"})).exit_code == 0);
  const auto end = d.wait_batch("slow", "half");
  // After the end: the whole file as it is, and summary.json.
  const auto all = run_cli(with_socket(d, {"results", "half"}));
  CHECK(all.exit_code == 0);
  CHECK(all.out == slurp(end.dir / "results.jsonl"));
  CHECK(lines_of(all.out).size() == 3);
  const auto summary = run_cli(with_socket(d, {"results", "--summary", "half"}));
  CHECK(summary.exit_code == 0);
  auto file = slurp(end.dir / "summary.json");
  CHECK(lines_of(summary.out) == lines_of(file));
  CHECK(summary.out.find(R"("state":"cancelled")") != std::string::npos);
}

TEST_CASE("results of an unknown batch exits 1", "[integration][cli]") {
  Daemon d(pool("echo", "echo", 1));
  d.start();
  for (const bool summary : {false, true}) {
    auto args = with_socket(d, {"results", "ghost"});
    if (summary) {
      args.emplace_back("--summary");
    }
    const auto r = run_cli(args);
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
    CHECK(r.err == "barista: unknown batch 'ghost'\n");
  }
}

TEST_CASE("a batch id used in two pools is named as POOL/ID", "[integration][cli]") {
  Daemon d(pool("alpha", "echo", 1) + pool("beta", "echo", 1, "    config:\n      fail_on: x\n"));
  d.start();
  TempDir tmp;
  write_file(tmp.path() / "jobs.txt", "a\nx\n");
  const auto file = (tmp.path() / "jobs.txt").string();
  REQUIRE(run_cli(with_socket(d, {"submit", "alpha", file})).out == "jobs\n");
  CHECK(d.wait_batch("alpha", "jobs").summary.ok == 2);
  // --wait follows its own pool's batch, not the other pool's finished one of the same id.
  const auto waited = run_cli(with_socket(d, {"submit", "beta", file, "--wait"}));
  CHECK(waited.exit_code == 1);
  CHECK(waited.out.find(R"("pool":"beta")") != std::string::npos);

  for (const std::string verb : {"results", "cancel"}) {
    const auto r = run_cli(with_socket(d, {verb, "jobs"}));
    CHECK(r.exit_code == 1);
    CHECK(r.err ==
          "barista: batch 'jobs' is in more than one pool (alpha, beta): name it as POOL/jobs\n");
  }
  const auto alpha = run_cli(with_socket(d, {"results", "alpha/jobs", "--summary"}));
  CHECK(alpha.exit_code == 0);
  CHECK(alpha.out.find(R"("pool":"alpha","state":"done","jobs":2,"ok":2,)") != std::string::npos);
  const auto beta = run_cli(with_socket(d, {"results", "beta/jobs"}));
  CHECK(beta.exit_code == 0);
  CHECK(lines_of(beta.out).size() == 2);
  CHECK(run_cli(with_socket(d, {"results", "gamma/jobs"})).err ==
        "barista: unknown batch 'gamma/jobs'\n");
  CHECK(run_cli(with_socket(d, {"results", "alpha/"})).exit_code == 1);
}

}  // namespace
}  // namespace barista::itest::cli
