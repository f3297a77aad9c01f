// Full validation of a config file (plugins loaded, one processor per pool), as run by
// `baristad --check-config` and `barista check-config`.

#include "daemon/runtime/check_config.hpp"

#include "daemon/config/config_loader.hpp"
#include "tests/unit/config/config_test_util.hpp"

#include <barista/abi.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

namespace barista::runtime {
namespace {

using config::testing::TempDir;

const std::filesystem::path kEcho = BARISTA_PLUGIN_DIR "/echo.so";

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a program with `args`, its stdout and stderr captured in files of `dir`.
RunResult run(const TempDir& dir, const std::vector<std::string>& args) {
  const auto out_file = dir.path() / "stdout";
  const auto err_file = dir.path() / "stderr";
  std::vector<char*> argv;
  for (const auto& arg : args) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0 || err < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) {
      ::_exit(126);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  RunResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_file(out_file);
  result.err = read_file(err_file);
  return result;
}

TEST_CASE("check-config reports the loader's problems", "[check-config]") {
  TempDir dir;
  auto file = dir.write("b.yaml", "pools:\n  p:\n    plugin: echo\n    wokers: 2\n");
  CHECK(check_config_file(file) ==
        std::vector<std::string>{file.string() +
                                 ":4:5: pool 'p': unknown key 'wokers' (did you mean 'workers'?)"});
  CHECK(check_config_file(dir.path() / "missing.yaml") ==
        std::vector<std::string>{(dir.path() / "missing.yaml").string() +
                                 ": cannot read: No such file or directory"});
}

TEST_CASE("check-config accepts a config without pools", "[check-config]") {
  TempDir dir;
  auto file = dir.write("b.yaml", "log_level: debug\n");
  CHECK(check_config_file(file).empty());
  std::ostringstream out;
  std::ostringstream err;
  CHECK(run_check_config(file, out, err) == 0);
  CHECK(out.str() == file.string() + ": ok\n");
  CHECK(err.str().empty());
}

TEST_CASE("a plugin that cannot be found is reported at the pool's plugin", "[check-config]") {
  TempDir dir;
  auto file = dir.write("b.yaml", "plugin_path: [" + dir.path().string() +
                                      "]\npools:\n  p:\n    plugin: /nonexistent/nothere.so\n"
                                      "  q:\n    plugin: nothere\n");
  CHECK(check_config_file(file) ==
        std::vector<std::string>{
            file.string() +
                ":4:13: pool 'p': plugin 'nothere' (/nonexistent/nothere.so): file not found",
            file.string() +
                ":6:13: pool 'q': plugin 'nothere': nothere.so not found in "
                "plugin_path (" +
                dir.path().string() + ")",
        });
  std::ostringstream out;
  std::ostringstream err;
  CHECK(run_check_config(file, out, err) == 1);
  CHECK(out.str().empty());
  CHECK(err.str() == check_config_file(file)[0] + "\n" + check_config_file(file)[1] + "\n");
}

TEST_CASE("a file that is not a plugin is reported at the pool's plugin", "[check-config]") {
  TempDir dir;
  dir.write("plugins/text.so", "this is not a shared library\n");
  auto file = dir.write("b.yaml",
                        "plugin_path: [plugins]\npools:\n  p:\n    plugin: text\n"
                        "  q:\n    plugin: ./plugins/text.so\n  r:\n    plugin: /bin/true\n");
  auto problems = check_config_file(file);
  REQUIRE(problems.size() == 3);
  const auto plugin_file = (dir.path() / "plugins/text.so").string();
  CHECK(problems[0].starts_with(file.string() + ":4:13: pool 'p': plugin 'text' (" + plugin_file +
                                "): not a shared library"));
  CHECK(problems[1].starts_with(file.string() + ":6:13: pool 'q': plugin 'text' (" + plugin_file +
                                "): not a shared library"));
  // An executable is ELF but carries no manifest.
  CHECK(
      problems[2].starts_with(file.string() + ":8:13: pool 'r': plugin 'true' (/bin/true): not a"));
}

TEST_CASE("check-config loads a real plugin and reports its config errors", "[check-config]") {
  if (!std::filesystem::exists(kEcho)) {
    WARN("skipped: " << kEcho << " is not built");
    return;
  }
  TempDir dir;
  auto good = dir.write("good.yaml",
                        "plugin_path: [" BARISTA_PLUGIN_DIR
                        "]\n"
                        "pools:\n  a:\n    plugin: echo\n    config:\n"
                        "      delay: 5ms\n  b:\n    plugin: " BARISTA_PLUGIN_DIR "/echo.so\n");
  CHECK(check_config_file(good).empty());

  auto bad = dir.write("bad.yaml", "plugin_path: [" BARISTA_PLUGIN_DIR
                                   "]\n"
                                   "pools:\n  a:\n    plugin: echo\n    config:\n"
                                   "      delay: soon\n  b:\n    plugin: echo\n    config:\n"
                                   "      dealy: 5ms\n");
  CHECK(check_config_file(bad) ==
        std::vector<std::string>{
            bad.string() + ":6:14: pool 'a': config.delay: expected a duration such as 250ms, "
                           "30s, 5m or 1h, got 'soon'",
            bad.string() +
                ":10:14: pool 'b': config.dealy: unknown key 'dealy' (did you mean 'delay'?)",
        });
}

TEST_CASE("check-config reports a plugin refused by the loader or its factory", "[check-config]") {
  const std::filesystem::path fixtures = BARISTA_FIXTURE_DIR;
  const auto throwing = fixtures / "fx_throwing_factory.so";
  const auto wrong_abi = fixtures / "fx_wrong_abi.so";
  if (!std::filesystem::exists(throwing) || !std::filesystem::exists(wrong_abi)) {
    WARN("skipped: the fixture plugins are not built in " << fixtures);
    return;
  }
  TempDir dir;
  auto file = dir.write("b.yaml", "plugin_path: [" + fixtures.string() +
                                      "]\npools:\n  t:\n    plugin: fx_throwing_factory\n"
                                      "  w:\n    workers: 2\n    plugin: fx_wrong_abi\n");
  auto problems = check_config_file(file);
  REQUIRE(problems.size() == 2);
  CHECK(problems[0] == file.string() + ":4:13: pool 't': plugin 'fx_throwing_factory' (" +
                           throwing.string() + "): factory failed: factory exploded");
  CHECK(problems[1].starts_with(file.string() + ":7:13: pool 'w': plugin "));
  CHECK_THAT(problems[1], Catch::Contains("built for SDK ABI"));
}

TEST_CASE("barista check-config exits 0 for a valid file and 1 for an invalid one",
          "[check-config]") {
  REQUIRE(std::filesystem::exists(BARISTA_BIN));
  TempDir dir;
  auto valid = dir.write("valid.yaml", "log_level: warn\n");
  auto result = run(dir, {BARISTA_BIN, "check-config", valid.string()});
  CHECK(result.exit_code == 0);
  CHECK(result.out == valid.string() + ": ok\n");
  CHECK(result.err.empty());

  auto invalid =
      dir.write("invalid.yaml", "pools:\n  p:\n    plugin: /nonexistent/x.so\n    workers: lots\n");
  result = run(dir, {BARISTA_BIN, "check-config", invalid.string()});
  CHECK(result.exit_code == 1);
  CHECK(result.out.empty());
  CHECK(result.err ==
        invalid.string() + ":4:14: pool 'p': workers: expected an integer, got 'lots'\n");

  // Loader problems first; with those fixed, the plugin's.
  auto no_plugin = dir.write("no_plugin.yaml", "pools:\n  p:\n    plugin: /nonexistent/x.so\n");
  result = run(dir, {BARISTA_BIN, "check-config", no_plugin.string()});
  CHECK(result.exit_code == 1);
  CHECK(result.err ==
        no_plugin.string() + ":3:13: pool 'p': plugin 'x' (/nonexistent/x.so): file not found\n");
}

TEST_CASE("the example configs are valid with the bundled plugins", "[check-config]") {
  const std::filesystem::path examples = BARISTA_SOURCE_DIR "/config/examples";
  const std::vector<std::string> names = {"minimal.yaml", "full.yaml", "redis.yaml"};
  for (const auto& name : names) {
    INFO(name);
    CHECK_NOTHROW(config::load_config_file(examples / name));
  }
  for (const auto* plugin : {"echo", "shell", "sha256", "http_fetch"}) {
    if (!std::filesystem::exists(std::filesystem::path(BARISTA_PLUGIN_DIR) /
                                 (std::string(plugin) + ".so"))) {
      WARN("skipped: the bundled plugin " << plugin << " is not built");
      return;
    }
  }
  // The same files with plugin_path pointed at the plugins just built.
  TempDir dir;
  for (const auto& name : names) {
    std::istringstream in(read_file(examples / name));
    std::string text = "plugin_path: [" BARISTA_PLUGIN_DIR "]\n";
    for (std::string line; std::getline(in, line);) {
      if (!line.starts_with("plugin_path:")) {
        text += line + "\n";
      }
    }
    INFO(name << ":\n" << text);
    CHECK(check_config_file(dir.write(name, text)).empty());
  }
}

TEST_CASE("a config error without a place is reported at the pool", "[check-config]") {
  const std::filesystem::path sha256 = BARISTA_PLUGIN_DIR "/sha256.so";
  if (!std::filesystem::exists(sha256)) {
    WARN("skipped: " << sha256 << " is not built");
    return;
  }
  TempDir dir;
  // sha256 requires `root`; a missing key has no line of its own.
  auto file = dir.write("b.yaml", "pools:\n  sums:\n    plugin: " + sha256.string() + "\n");
  auto problems = check_config_file(file);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].starts_with(file.string() + ":2:3: pool 'sums': config.root: "));
}

TEST_CASE("barista check-config accepts a config with a real plugin", "[check-config]") {
  REQUIRE(std::filesystem::exists(BARISTA_BIN));
  if (!std::filesystem::exists(kEcho)) {
    WARN("skipped: " << kEcho << " is not built");
    return;
  }
  TempDir dir;
  auto file =
      dir.write("b.yaml", "spool: spool\ncontrol_socket: b.sock\nplugin_path: [" BARISTA_PLUGIN_DIR
                          "]\npools:\n  echo:\n    plugin: echo\n    workers: 2\n");
  auto result = run(dir, {BARISTA_BIN, "check-config", file.string()});
  CHECK(result.exit_code == 0);
  CHECK(result.out == file.string() + ": ok\n");
  CHECK(result.err.empty());
}

TEST_CASE("barista --version names the version and the SDK ABI", "[check-config]") {
  REQUIRE(std::filesystem::exists(BARISTA_BIN));
  TempDir dir;
  auto result = run(dir, {BARISTA_BIN, "--version"});
  CHECK(result.exit_code == 0);
  CHECK(result.out ==
        std::string("barista ") + BARISTA_VERSION + " (SDK ABI " + std::to_string(kSdkAbi) + ")\n");
}

TEST_CASE("barista refuses bad usage with a message", "[check-config]") {
  REQUIRE(std::filesystem::exists(BARISTA_BIN));
  TempDir dir;
  auto result = run(dir, {BARISTA_BIN, "frobnicate"});
  CHECK(result.exit_code == 64);
  CHECK_FALSE(result.err.empty());
  result = run(dir, {BARISTA_BIN, "check-config"});
  CHECK(result.exit_code == 64);
  CHECK_THAT(result.err, Catch::Contains("FILE"));
  result = run(dir, {BARISTA_BIN});
  CHECK(result.exit_code == 64);
  result = run(dir, {BARISTA_BIN, "--help"});
  CHECK(result.exit_code == 0);
  CHECK_THAT(result.out, Catch::Contains("check-config"));
}

}  // namespace
}  // namespace barista::runtime
