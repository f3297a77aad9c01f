// `barista reload` (docs/reference.md#barista-reload, #reload): waits for the outcome, prints what
// changed, exits 0; a rejected config prints its located errors on stderr, exits 1, and the old
// config runs on.

#include "tests/integration/cli/cli_support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace barista::itest::cli {
namespace {

// "c: &c [*b, *b, ...]": each level nine times the one before.
std::string fmt_alias(char c) {
  std::string line = "  ";
  line += c;
  line += ": &";
  line += c;
  line += " [";
  for (int i = 0; i < 9; ++i) {
    line += i == 0 ? "*" : ", *";
    line += static_cast<char>(c - 1);
  }
  return line + "]\n";
}

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

TEST_CASE("hostile configs are refused at reload in bounded time; the old config serves on",
          "[integration][cli]") {
  Daemon d(pool("echo", "echo", 2));
  d.start();
  const auto before = run_cli(with_socket(d, {"status", "--json"})).out;
  const auto original = slurp(d.config_file());
  std::string deep = "pools:\n  x:\n    config:\n      k: ";
  for (int i = 0; i < 100'000; ++i) {
    deep += '[';
  }
  std::string bomb = original + "bomb:\n  a: &a [x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'z'; ++c) {
    bomb += fmt_alias(c);
  }
  struct Hostile {
    std::string name;
    std::function<void()> write;
    std::string says;
  };
  const std::vector<Hostile> hostile = {
      {"a 1 GB file",
       [&] {
         write_file(d.config_file(), original);
         std::filesystem::resize_file(d.config_file(), 1ULL << 30);  // sparse: no disk used
       },
       "file of 1073741824 bytes exceeds the 1 MiB limit"},
      {"100,000 nested lists", [&] { write_file(d.config_file(), deep); }, "nest"},
      {"an alias bomb", [&] { write_file(d.config_file(), bomb); }, "alias"},
      {"not UTF-8", [&] { write_file(d.config_file(), original + "# caf\xe9\n"); },
       "not UTF-8 text (byte 0xe9)"},
      {"two documents", [&] { write_file(d.config_file(), original + "---\n" + original); },
       "document"},
  };
  for (const auto& h : hostile) {
    h.write();
    const auto start = Clock::now();
    const auto r = run_cli(with_socket(d, {"reload"}));
    INFO(h.name << ":\n" << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find(h.says) != std::string::npos);
    CHECK(Clock::now() - start < seconds(5));
    CHECK(run_cli(with_socket(d, {"status", "--json"})).out == before);
  }
  CHECK(d.running());
}

}  // namespace
}  // namespace barista::itest::cli
