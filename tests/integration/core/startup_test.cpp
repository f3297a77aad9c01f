// Refusing to start (docs/reference.md#baristad, #config-errors, #plugin-loading): bad config files
// and refused plugins make `baristad --config` exit 1 with `FILE:LINE:COL: message`, and
// `--check-config` reports the same; a valid config checks `FILE: ok`.

#include "tests/integration/core/core_support.hpp"

#include <barista/abi.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace barista::itest {
namespace {

namespace fs = std::filesystem;

// A config whose single pool `p` uses `plugin` (line 6, value at column 13); `rest` starts at
// line 7.
fs::path write_config(const TempDir& dir, const std::string& plugin, const std::string& rest = "") {
  const auto file = dir.path() / "barista.yaml";
  write_file(file, "spool: \"" + (dir.path() / "spool").string() + "\"\n" +                // 1
                       "control_socket: \"" + (dir.path() / "s.sock").string() + "\"\n" +  // 2
                       "plugin_path: [\"" + plugin_dir().string() + "\", \"" +             // 3
                       fixture_dir().string() + "\"]\n" +                                  //
                       "pools:\n" +                                                        // 4
                       "  p:\n" +                                                          // 5
                       "    plugin: " + plugin + "\n" +                                    // 6
                       rest);
  return file;
}

// The line of `text` that carries the location `FILE:LINE:COL: ` (COL any number when 0) and
// every one of `parts`; "" when there is none.
std::string located_line(const std::string& text, const fs::path& file, int line, int col,
                         const std::vector<std::string>& parts) {
  const std::string prefix = file.string() + ":" + std::to_string(line) + ":";
  std::istringstream in(text);
  std::string l;
  static const std::regex kColumn(R"(^(\d+): )");
  while (std::getline(in, l)) {
    const auto at = l.find(prefix);
    if (at == std::string::npos) {
      continue;
    }
    std::smatch m;
    const std::string after = l.substr(at + prefix.size());
    if (!std::regex_search(after, m, kColumn) || (col != 0 && m[1] != std::to_string(col))) {
      continue;
    }
    bool all = true;
    for (const auto& p : parts) {
      all = all && l.find(p) != std::string::npos;
    }
    if (all) {
      return l;
    }
  }
  return {};
}

TEST_CASE("baristad --version prints the version and the SDK ABI", "[integration][version]") {
  const auto r = run_baristad({"--version"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out,
             Catch::Contains(BARISTA_VERSION) && Catch::Contains("ABI " + std::to_string(kSdkAbi)));
}

TEST_CASE("relative paths in the config resolve against the config file's folder",
          "[integration][config]") {
  Daemon d("  echo:\n    plugin: echo\n");
  d.edit_config([&](std::string text) {
    // The daemon runs in d.cwd(), not in the config's folder: only a path resolved against
    // the config's folder gives the spool the harness waits for.
    const std::string spool = "spool: \"" + d.spool().string() + "\"";
    const std::string sock = "control_socket: \"" + d.socket().string() + "\"";
    text.replace(text.find(spool), spool.size(), "spool: spool");
    text.replace(text.find(sock), sock.size(), "control_socket: barista.sock");
    return text;
  });
  d.start();
  d.drop("echo", "rel.txt", "relative\n");
  CHECK(d.wait_batch("echo", "rel").summary.ok == 1);
  CHECK_FALSE(fs::exists(d.cwd() / "spool"));
}

TEST_CASE("bad config: an unknown key is refused with its location and a suggestion",
          "[integration][config]") {
  TempDir dir;
  const auto file = write_config(dir, "echo", "    wokers: 2\n");
  const auto r = run_baristad({"--config", file.string()});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err,
             Catch::Contains(file.string() +
                             ":7:5: pool 'p': unknown key 'wokers' (did you mean 'workers'?)"));
  CHECK(r.err.find("baristad ready") == std::string::npos);
}

TEST_CASE("bad config: a bad duration is refused with its location", "[integration][config]") {
  TempDir dir;
  const auto file = write_config(dir, "echo", "    timeout: 30 seconds\n");
  const auto r = run_baristad({"--config", file.string()});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK_FALSE(located_line(r.err, file, 7, 14, {"timeout", "30 seconds"}).empty());
}

TEST_CASE("bad config: every error is reported, not only the first", "[integration][config]") {
  TempDir dir;
  const auto file = write_config(dir, "echo", "    wokers: 2\n    timeout: 30 seconds\n");
  const auto r = run_baristad({"--config", file.string()});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK_FALSE(located_line(r.err, file, 7, 5, {"wokers"}).empty());
  CHECK_FALSE(located_line(r.err, file, 8, 14, {"timeout"}).empty());
}

TEST_CASE("check-config: FILE: ok and exit 0, or located errors and exit 1",
          "[integration][config][check_config]") {
  TempDir dir;
  SECTION("a valid config") {
    const auto file = write_config(dir, "echo", "    workers: 2\n");
    const auto r = run_baristad({"--check-config", "--config", file.string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == file.string() + ": ok\n");
    const auto cli = run_barista({"check-config", file.string()});
    INFO(cli.err);
    CHECK(cli.exit_code == 0);
    CHECK(cli.out == file.string() + ": ok\n");
  }
  SECTION("an invalid config") {
    const auto file = write_config(dir, "echo", "    wokers: 2\n");
    const auto r = run_baristad({"--check-config", "--config", file.string()});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find(": ok") == std::string::npos);
    CHECK_FALSE(located_line(r.err, file, 7, 5, {"unknown key 'wokers'"}).empty());
    const auto cli = run_barista({"check-config", file.string()});
    INFO(cli.out << cli.err);
    CHECK(cli.exit_code == 1);
    CHECK_FALSE(located_line(cli.err, file, 7, 5, {"unknown key 'wokers'"}).empty());
  }
  SECTION("barista check-config runs the baristad beside it, else the one on PATH") {
    // A barista copied alone into a folder has no baristad beside it.
    const auto file = write_config(dir, "echo", "    workers: 2\n");
    const auto lone = dir.path() / "lone" / "barista";
    std::filesystem::create_directories(lone.parent_path());
    std::filesystem::copy_file(BARISTA_BIN, lone);
    const auto bin_dir = std::filesystem::path(BARISTAD_BIN).parent_path().string();
    const auto from_path = run_program({lone.string(), "check-config", file.string()}, seconds(30),
                                       {"PATH=" + bin_dir});
    INFO(from_path.err);
    CHECK(from_path.exit_code == 0);
    CHECK(from_path.out == file.string() + ": ok\n");
    const auto none = run_program({lone.string(), "check-config", file.string()}, seconds(30),
                                  {"PATH=" + (dir.path() / "lone").string()});
    INFO(none.out << none.err);
    CHECK(none.exit_code == 3);
    CHECK(none.err.find("barista: cannot run baristad --check-config: No such file or directory") !=
          std::string::npos);
  }
  SECTION("a plugin's factory is run: one that throws makes the config invalid") {
    const auto file = write_config(dir, "fx_throwing_factory");
    const auto r = run_baristad({"--check-config", "--config", file.string()});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK_FALSE(located_line(r.err, file, 6, 0, {"factory exploded"}).empty());
  }
}

struct Refusal {
  std::string plugin;
  std::string rest;
  int line;
  std::vector<std::string> reason;
};

TEST_CASE("a refused plugin keeps baristad from starting, with the reason at the plugin: line",
          "[integration][plugins]") {
  const std::string abi = std::to_string(kSdkAbi);
  const std::string wrong_abi = std::to_string(kSdkAbi + 1);
  const std::vector<Refusal> cases = {
      {"fx_wrong_abi",
       "",
       6,
       {"built for SDK ABI " + wrong_abi + ", baristad speaks " + abi, "fx_wrong_abi"}},
      {"fx_not_a_library", "", 6, {"not a shared library"}},
      {"fx_no_manifest", "", 6, {"not a Barista plugin"}},
      {"fx_missing_symbol", "", 6, {"barista_fixture_nowhere"}},
      {"fx_no_factory", "", 6, {"factory"}},
      {"fx_throwing_factory", "", 6, {"factory exploded"}},
      {"nosuch", "", 6, {"nosuch", "not found"}},
      {"/nonexistent/folder/nosuch.so", "", 6, {"/nonexistent/folder/nosuch.so"}},
      // A plugin's own ConfigError is located at the offending key of `config:`.
      {"fx_config_error", "    config:\n      size: big\n", 8, {"size"}},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION("plugin: " << c.plugin) {
      TempDir dir;
      const auto file = write_config(dir, c.plugin, c.rest);
      const std::vector<std::string> env = {"BARISTA_FX_WRONG_ABI_MARKER=" +
                                            (dir.path() / "wrong_abi_ran").string()};
      const auto r = run_baristad({"--config", file.string()}, seconds(30), env);
      INFO("baristad's stderr:\n" << r.err);
      CHECK(r.exit_code == 1);
      CHECK_FALSE(located_line(r.err, file, c.line, 0, c.reason).empty());
      CHECK(r.err.find("baristad ready") == std::string::npos);

      const auto check =
          run_baristad({"--check-config", "--config", file.string()}, seconds(30), env);
      INFO("--check-config's stderr:\n" << check.err);
      CHECK(check.exit_code == 1);
      CHECK_FALSE(located_line(check.err, file, c.line, 0, c.reason).empty());
      // The ABI is checked before any plugin code runs: fx_wrong_abi's constructor never ran.
      CHECK_FALSE(fs::exists(dir.path() / "wrong_abi_ran"));
    }
  }
}

}  // namespace
}  // namespace barista::itest
