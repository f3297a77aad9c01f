// `barista reload` (CONTRACT.md §5, §6): waits for the outcome, prints what changed, exits 0;
// a rejected config prints its located errors on stderr, exits 1, and the old config runs on.

#include "tests/integration/cli/cli_support.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace barista::itest::cli {
namespace {

TEST_CASE("reload applies a config and says what changed", "[integration][cli]") {
  Daemon d(pool("echo", "echo", 2));
  d.start();

  auto r = run_cli(with_socket(d, {"reload"}));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "reload applied: config generation 2 (no changes)\n");

  d.set_pools(pool("echo", "echo", 3) + pool("extra", "fx_slow", 1));
  r = run_cli(with_socket(d, {"reload"}));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out ==
        "reload applied: config generation 3\n"
        "  pool 'echo': workers 2 -> 3\n"
        "  added pool 'extra'\n");
  CHECK(r.err.empty());
  const auto status = run_cli(with_socket(d, {"status", "--json"}));
  CHECK(status.out.find(R"({"name":"echo","plugin":"echo","workers":3,)") != std::string::npos);
  CHECK(status.out.find(R"({"name":"extra","plugin":"fx_slow","workers":1,)") != std::string::npos);
}

TEST_CASE("reload of a bad config exits 1 with the located error; the old config serves on",
          "[integration][cli]") {
  Daemon d(pool("echo", "echo", 2));
  d.start();
  const auto before = run_cli(with_socket(d, {"status", "--json"}));
  REQUIRE(before.exit_code == 0);

  d.edit_config([](std::string text) { return text + "    wokers: 4\n"; });
  const auto file = d.config_file().string();
  // --config finds the socket even though the file does not validate.
  const auto r = run_cli({"reload", "--config", file});
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
  INFO(r.err);
  const auto lines = lines_of(r.err);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "barista: reload rejected; baristad keeps running config generation 1:");
  CHECK(lines[1].starts_with(file + ":"));
  CHECK(lines[1].ends_with(": pool 'echo': unknown key 'wokers' (did you mean 'workers'?)"));

  // The old config still runs: same status, and a batch still goes through.
  CHECK(run_cli(with_socket(d, {"status", "--json"})).out == before.out);
  TempDir tmp;
  write_file(tmp.path() / "after.txt", "x\ny\n");
  const auto submitted =
      run_cli(with_socket(d, {"submit", "--wait", "echo", (tmp.path() / "after.txt").string()}));
  CHECK(submitted.exit_code == 0);
  CHECK(d.wait_batch("echo", "after").summary.ok == 2);
}

}  // namespace
}  // namespace barista::itest::cli
