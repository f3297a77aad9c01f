// What a user sees for a bad config file: every problem, as FILE:LINE:COL: message.

#include "daemon/config/config_loader.hpp"
#include "tests/sanitized.hpp"
#include "tests/unit/config/config_test_util.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <chrono>

namespace barista::config {
namespace {

using testing::error_of;
using testing::errors_of;
using testing::TempDir;

// "Quickly": a guard against parsing that grows out of bounds with the input (a 1 MB bomb takes
// a fraction of a second in the plain build), not a speed target. The sanitizers make the parser
// several times slower (a flow-map bomb took 2.9 s under TSan), so they get ten times as long.
constexpr auto kQuickly = std::chrono::seconds(barista::testing::kSanitized ? 20 : 2);

// A pool `p` with plugin echo and the given extra lines (each indented by four spaces).
std::string pool_with(std::string_view lines) {
  return "pools:\n  p:\n    plugin: echo\n" + std::string(lines);
}

TEST_CASE("an unknown key is named with the closest valid one", "[config]") {
  CHECK(error_of("pools:\n  scrape:\n    plugin: echo\n    wokers: 10\n") ==
        "test.yaml:4:5: pool 'scrape': unknown key 'wokers' (did you mean 'workers'?)");
  CHECK(error_of("pool:\n  scrape:\n    plugin: echo\n") ==
        "test.yaml:1:1: unknown key 'pool' (did you mean 'pools'?)");
  CHECK(error_of("log-level: info\n") ==
        "test.yaml:1:1: unknown key 'log-level' (did you mean 'log_level'?)");
}

TEST_CASE("an unknown key without a close match lists the valid keys", "[config]") {
  CHECK(error_of("colour: blue\n") ==
        "test.yaml:1:1: unknown key 'colour' (valid keys: spool, control_socket, plugin_path, "
        "log_level, metrics, shutdown_timeout, pools)");
  CHECK(error_of(pool_with("    speed: 3\n")) ==
        "test.yaml:4:5: pool 'p': unknown key 'speed' (valid keys: plugin, workers, queue, "
        "on_error, retries, backoff, max_backoff, timeout, rate, config, max_job_bytes, "
        "max_crashes, redis, key, per_key, max_throttled, isolation, memory_max)");
}

TEST_CASE("a value of the wrong type is reported with what was found", "[config]") {
  CHECK(error_of(pool_with("    workers: many\n")) ==
        "test.yaml:4:14: pool 'p': workers: expected an integer, got 'many'");
  CHECK(error_of(pool_with("    workers: 2.5\n")) ==
        "test.yaml:4:14: pool 'p': workers: expected an integer, got '2.5'");
  CHECK(error_of(pool_with("    queue: [1]\n")) ==
        "test.yaml:4:12: pool 'p': queue: expected an integer, got a list");
  CHECK(error_of("pools:\n  p:\n    plugin: [a, b]\n") ==
        "test.yaml:3:13: pool 'p': plugin: expected a string, got a list");
  CHECK(error_of("spool: {a: 1}\n") == "test.yaml:1:8: spool: expected a string, got a map");
  CHECK(error_of("plugin_path: {a: 1}\n") ==
        "test.yaml:1:14: plugin_path: expected a list of strings, got a map");
  CHECK(error_of("plugin_path: [/a, [b]]\n") ==
        "test.yaml:1:19: plugin_path: expected a string, got a list");
  CHECK(error_of("pools: [a, b]\n") == "test.yaml:1:8: pools: expected a map, got a list");
  CHECK(error_of("pools:\n  p: echo\n") ==
        "test.yaml:2:6: pool 'p': expected a map of settings, got 'echo'");
  CHECK(error_of(pool_with("    config: [a]\n")) ==
        "test.yaml:4:13: pool 'p': config: expected a map, got a list");
}

TEST_CASE("an empty value is reported at its key", "[config]") {
  CHECK(error_of(pool_with("    workers:\n")) ==
        "test.yaml:4:5: pool 'p': workers: expected an integer, got nothing");
  CHECK(error_of("spool:\n") == "test.yaml:1:1: spool: expected a string, got nothing");
  CHECK(error_of("spool: ''\n") == "test.yaml:1:8: spool: must not be empty");
}

TEST_CASE("a value out of range names the range", "[config]") {
  CHECK(error_of(pool_with("    workers: 0\n")) ==
        "test.yaml:4:14: pool 'p': workers: must be between 1 and 1024, got 0");
  CHECK(error_of(pool_with("    workers: 1025\n")) ==
        "test.yaml:4:14: pool 'p': workers: must be between 1 and 1024, got 1025");
  CHECK(error_of(pool_with("    workers: 99999999999999999999999\n")) ==
        "test.yaml:4:14: pool 'p': workers: must be between 1 and 1024, got "
        "99999999999999999999999");
  CHECK(error_of(pool_with("    queue: 0\n")) ==
        "test.yaml:4:12: pool 'p': queue: must be at least 1, got 0");
  CHECK(error_of(pool_with("    retries: -1\n")) ==
        "test.yaml:4:14: pool 'p': retries: must be at least 0, got -1");
  CHECK(error_of(pool_with("    max_crashes: 0\n")) ==
        "test.yaml:4:18: pool 'p': max_crashes: must be at least 1, got 0");
  CHECK(error_of(pool_with("    max_job_bytes: 0\n")) ==
        "test.yaml:4:20: pool 'p': max_job_bytes: must be at least 1 bytes, got 0");
  CHECK(error_of(pool_with("    timeout: 0s\n")) ==
        "test.yaml:4:14: pool 'p': timeout: must be at least 1ms, got 0s");
}

TEST_CASE("a bad duration, size or rate shows the accepted forms", "[config]") {
  CHECK(error_of(pool_with("    backoff: 5 seconds\n")) ==
        "test.yaml:4:14: pool 'p': backoff: expected a duration such as 250ms, 30s, 5m or 1h, "
        "got '5 seconds'");
  CHECK(error_of("shutdown_timeout: 30\n") ==
        "test.yaml:1:19: shutdown_timeout: expected a duration such as 250ms, 30s, 5m or 1h, "
        "got '30'");
  CHECK(error_of(pool_with("    max_job_bytes: 1MB\n")) ==
        "test.yaml:4:20: pool 'p': max_job_bytes: expected a size such as 512, 64KiB or 1MiB, "
        "got '1MB'");
  CHECK(error_of(pool_with("    rate: 50/d\n")) ==
        "test.yaml:4:11: pool 'p': rate: expected N/s, N/m or N/h with N at least 1, got '50/d'");
  for (std::string_view rate : {"0/s", "50", "/s", "-1/s", "1.5/s", "50/s/s", "x/m"}) {
    INFO(rate);
    CHECK(error_of(pool_with("    rate: \"" + std::string(rate) + "\"\n")) ==
          "test.yaml:4:11: pool 'p': rate: expected N/s, N/m or N/h with N at least 1, got '" +
              std::string(rate) + "'");
  }
}

TEST_CASE("a bad choice lists the allowed values", "[config]") {
  CHECK(error_of(pool_with("    on_error: stop\n")) ==
        "test.yaml:4:15: pool 'p': on_error: expected continue or cancel_all, got 'stop'");
  CHECK(error_of("log_level: verbose\n") ==
        "test.yaml:1:12: log_level: expected one of trace, debug, info, warn, error, got "
        "'verbose'");
  CHECK(error_of("metrics: localhost\n") ==
        "test.yaml:1:10: metrics: expected HOST:PORT such as 127.0.0.1:9464, got 'localhost'");
  CHECK(error_of("metrics: 127.0.0.1:99999\n") ==
        "test.yaml:1:10: metrics: expected HOST:PORT such as 127.0.0.1:9464, got "
        "'127.0.0.1:99999'");
}

TEST_CASE("a bad pool name is refused with the allowed form", "[config]") {
  CHECK(error_of("pools:\n  Scrape!:\n    plugin: echo\n") ==
        "test.yaml:2:3: pool name 'Scrape!' is invalid: use 1 to 64 of a-z, 0-9, '_' and '-'");
  CHECK(error_of("pools:\n  \"\":\n    plugin: echo\n") ==
        "test.yaml:2:3: pool name '' is invalid: use 1 to 64 of a-z, 0-9, '_' and '-'");
  const std::string long_name(65, 'a');
  CHECK(error_of("pools:\n  " + long_name + ":\n    plugin: echo\n") ==
        "test.yaml:2:3: pool name '" + std::string(60, 'a') +
            "...' is invalid: use 1 to 64 of a-z, 0-9, '_' and '-'");
}

TEST_CASE("a pool without a plugin is refused at its name", "[config]") {
  CHECK(error_of("pools:\n  scrape:\n    workers: 2\n") ==
        "test.yaml:2:3: pool 'scrape': missing required key 'plugin'");
  CHECK(error_of("pools:\n  scrape:\n") ==
        "test.yaml:2:3: pool 'scrape': missing required key 'plugin'");
}

TEST_CASE("a duplicate key is refused at its second place", "[config]") {
  CHECK(error_of(pool_with("    workers: 1\n    workers: 2\n")) ==
        "test.yaml:5:5: pool 'p': duplicate key 'workers' (first given at line 4)");
  CHECK(error_of("log_level: info\nlog_level: warn\n") ==
        "test.yaml:2:1: duplicate key 'log_level' (first given at line 1)");
  CHECK(error_of("pools:\n  a:\n    plugin: echo\n  a:\n    plugin: echo\n") ==
        "test.yaml:4:3: pools: duplicate key 'a' (first given at line 2)");
  CHECK(error_of(pool_with("    config:\n      k: 1\n      k: 2\n")) ==
        "test.yaml:6:7: pool 'p': config: duplicate key 'k' (first given at line 5)");
  CHECK(error_of(pool_with("    config:\n      k:\n        x: 1\n        x: 2\n")) ==
        "test.yaml:7:9: pool 'p': config.k: duplicate key 'x' (first given at line 6)");
}

TEST_CASE("a key that is not text is refused", "[config]") {
  CHECK(error_of("? [a, b]\n: 1\n") == "test.yaml:1:3: keys must be text, got a list");
}

TEST_CASE("a redis section is checked", "[config]") {
  CHECK(error_of(pool_with("    redis:\n      stream: s\n")) ==
        "test.yaml:4:5: pool 'p': redis: missing required key 'url'");
  CHECK(error_of(pool_with("    redis:\n      url: redis://h:1/0\n      urll: x\n")) ==
        "test.yaml:6:7: pool 'p': redis: unknown key 'urll' (did you mean 'url'?)");
  CHECK(error_of(pool_with("    redis:\n      url: http://h:6379/0\n")) ==
        "test.yaml:5:12: pool 'p': redis.url: expected redis://[:password@]host:port/db: must "
        "start with redis://");
  CHECK(error_of(pool_with("    redis:\n      url: redis://host/0\n")) ==
        "test.yaml:5:12: pool 'p': redis.url: expected redis://[:password@]host:port/db: "
        "expected HOST:PORT after redis:// (port 1-65535)");
  CHECK(error_of(pool_with("    redis:\n      url: redis://h:0/0\n")) ==
        "test.yaml:5:12: pool 'p': redis.url: expected redis://[:password@]host:port/db: "
        "expected HOST:PORT after redis:// (port 1-65535)");
  CHECK(error_of(pool_with("    redis:\n      url: redis://h:1/x\n")) ==
        "test.yaml:5:12: pool 'p': redis.url: expected redis://[:password@]host:port/db: the "
        "database after the '/' must be a number");
  // The message never repeats the url: it may hold a password.
  CHECK(error_of(pool_with("    redis:\n      url: redis://user:hunter2@h:1/0\n")) ==
        "test.yaml:5:12: pool 'p': redis.url: expected redis://[:password@]host:port/db: a "
        "password is given as :PASSWORD@ before the host");
  CHECK(error_of(pool_with("    redis:\n      url: redis://h:1\n      claim_after: soon\n")) ==
        "test.yaml:6:20: pool 'p': redis.claim_after: expected a duration such as 250ms, 30s, 5m "
        "or 1h, got 'soon'");
  CHECK(error_of(pool_with("    redis:\n      url: redis://h:1\n      results_ttl: 10ms\n")) ==
        "test.yaml:6:20: pool 'p': redis.results_ttl: must be at least 1s, got 10ms");
  CHECK(error_of(pool_with("    redis: redis://h:1\n")) ==
        "test.yaml:4:12: pool 'p': redis: expected a map, got 'redis://h:1'");
}

TEST_CASE("a control socket path too long for a Unix socket is refused", "[config]") {
  const std::string path = "/" + std::string(120, 's');
  CHECK(error_of("control_socket: " + path + "\n") ==
        "test.yaml:1:17: control_socket: the path is 121 bytes long once resolved (" + path +
            "), a Unix socket's is at most 107");
}

TEST_CASE("several problems are reported together, in file order", "[config]") {
  constexpr std::string_view kText = R"(log_level: loud
pools:
  scrape:
    plugin: http_fetch
    wokers: 10
    timeout: 30
  Bad:
    workers: 0
shutdown_timeout: soon
)";
  CHECK(errors_of(kText) ==
        std::vector<std::string>{
            "test.yaml:1:12: log_level: expected one of trace, debug, info, warn, error, got "
            "'loud'",
            "test.yaml:5:5: pool 'scrape': unknown key 'wokers' (did you mean 'workers'?)",
            "test.yaml:6:14: pool 'scrape': timeout: expected a duration such as 250ms, 30s, 5m "
            "or 1h, got '30'",
            "test.yaml:7:3: pool name 'Bad' is invalid: use 1 to 64 of a-z, 0-9, '_' and '-'",
            "test.yaml:7:3: pool 'Bad': missing required key 'plugin'",
            "test.yaml:8:14: pool 'Bad': workers: must be between 1 and 1024, got 0",
            "test.yaml:9:19: shutdown_timeout: expected a duration such as 250ms, 30s, 5m or 1h, "
            "got 'soon'",
        });
}

TEST_CASE("a file of garbage gives a bounded report", "[config]") {
  std::string text;
  for (int i = 0; i < 5000; ++i) {
    text += "key" + std::to_string(i) + ": 1\n";
  }
  auto errors = errors_of(text);
  REQUIRE(errors.size() == 101);
  CHECK(errors[0].starts_with("test.yaml:1:1: unknown key 'key0' (valid keys: "));
  CHECK(errors[99].starts_with("test.yaml:100:1: unknown key 'key99' "));
  CHECK(errors[100] == "test.yaml: 4900 more problems not shown");
}

TEST_CASE("control characters in a message are escaped", "[config]") {
  CHECK(error_of("\"a\\x01b\": 1\n") ==
        "test.yaml:1:1: unknown key 'a\\x01b' (valid keys: spool, control_socket, plugin_path, "
        "log_level, metrics, shutdown_timeout, pools)");
  CHECK(error_of("log_level: \"\\e[31mred\"\n") ==
        "test.yaml:1:12: log_level: expected one of trace, debug, info, warn, error, got "
        "'\\x1b[31mred'");
}

TEST_CASE("ConfigErrors says every problem in what()", "[config]") {
  try {
    (void)parse_config("log_level: x\nspool: [1]\n", "t.yaml");
    FAIL("accepted");
  } catch (const ConfigErrors& e) {
    CHECK(std::string(e.what()) ==
          "t.yaml:1:12: log_level: expected one of trace, debug, info, warn, error, got 'x'\n"
          "t.yaml:2:8: spool: expected a string, got a list");
  }
}

TEST_CASE("a YAML syntax error is reported at the parser's mark", "[config]") {
  CHECK(error_of("pools: [a, b\n") ==
        "test.yaml:2:1: YAML syntax error: end of sequence flow not found");
  CHECK(error_of("spool: a: b\n") == "test.yaml:1:9: YAML syntax error: illegal map value");
}

TEST_CASE("a document that is not a map is refused", "[config]") {
  CHECK(error_of("- spool\n- pools\n") ==
        "test.yaml:1:1: expected a map of settings (spool, pools, ...) at the top level, got a "
        "list");
  CHECK(error_of("just text\n") ==
        "test.yaml:1:1: expected a map of settings (spool, pools, ...) at the top level, got "
        "'just text'");
}

TEST_CASE("more than one YAML document is refused", "[config]") {
  CHECK(error_of("log_level: info\n---\nlog_level: warn\n") ==
        "test.yaml:2:1: more than one YAML document ('---'): a config file holds exactly one");
}

TEST_CASE("aliases are refused, so an alias bomb cannot expand", "[config]") {
  CHECK(error_of("pools:\n  a: &shared\n    plugin: echo\n  b: *shared\n") ==
        "test.yaml:4:6: YAML aliases are not supported (*shared): write the value out in full");

  // The "billion laughs": nine levels of ten aliases each.
  std::string bomb = "pools:\n  p:\n    plugin: echo\n    config:\n      l0: &l0 [lol]\n";
  for (int i = 1; i <= 9; ++i) {
    bomb += "      l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) {
      bomb += (j == 0 ? "*l" : ", *l") + std::to_string(i - 1);
    }
    bomb += "]\n";
  }
  const auto start = std::chrono::steady_clock::now();
  auto errors = errors_of(bomb);
  CHECK(std::chrono::steady_clock::now() - start < kQuickly);
  REQUIRE(errors.size() == 90);
  CHECK(errors[0] ==
        "test.yaml:6:16: YAML aliases are not supported (*l0): write the value out in full");
}

TEST_CASE("nesting deeper than 64 levels is refused quickly", "[config]") {
  SECTION("flow collections") {
    const auto start = std::chrono::steady_clock::now();
    auto errors = errors_of(std::string(100'000, '['));
    CHECK(std::chrono::steady_clock::now() - start < kQuickly);
    REQUIRE(errors.size() == 1);
    CHECK_THAT(
        errors[0],
        Catch::Matches(R"(test\.yaml:1:\d+: nesting deeper than 64 levels is not supported)"));
  }
  SECTION("flow maps") {
    const auto start = std::chrono::steady_clock::now();
    auto errors = errors_of(std::string(1'000'000, '{'));
    CHECK(std::chrono::steady_clock::now() - start < kQuickly);
    REQUIRE(errors.size() == 1);
    CHECK_THAT(
        errors[0],
        Catch::Matches(R"(test\.yaml:1:\d+: nesting deeper than 64 levels is not supported)"));
  }
  SECTION("block maps") {
    std::string text = "pools:\n  p:\n    plugin: echo\n    config:\n";
    std::string indent = "      ";
    for (int level = 4; level <= 64; ++level) {
      text += indent + "k:\n";
      indent += "  ";
    }
    text += indent + "k: v\n";  // the 65th map, on line 66
    CHECK(error_of(text) == "test.yaml:66:" + std::to_string(indent.size() + 1) +
                                ": nesting deeper than 64 levels is not supported");
  }
  SECTION("64 levels are fine") {
    std::string text = "pools:\n  p:\n    plugin: echo\n    config:\n";
    std::string indent = "      ";
    for (int level = 4; level < 64; ++level) {
      text += indent + "k:\n";
      indent += "  ";
    }
    text += indent + "k: v\n";
    CHECK_NOTHROW(parse_config(text, "t.yaml"));
  }
}

TEST_CASE("a config that is not UTF-8 is refused at the first bad byte", "[config]") {
  CHECK(error_of("spool: /srv\npools:\n  caf\xe9:\n    plugin: echo\n") ==
        "test.yaml:3:6: not UTF-8 text (byte 0xe9)");
  CHECK(error_of("\xff\xfe") == "test.yaml:1:1: not UTF-8 text (byte 0xff)");
  // Valid UTF-8 beyond ASCII is fine where a string may hold it.
  CHECK_NOTHROW(parse_config("log_level: info # caf\xc3\xa9 \xe2\x98\x95\n", "t.yaml"));
}

TEST_CASE("a config file over 1 MiB is refused", "[config]") {
  const std::string big = "# " + std::string(1024 * 1024, 'x') + "\n";
  CHECK(error_of(big) == "test.yaml: file of 1048579 bytes exceeds the 1 MiB limit");

  TempDir dir;
  auto file = dir.write("big.yaml", big);
  try {
    (void)load_config_file(file);
    FAIL("accepted");
  } catch (const ConfigErrors& e) {
    CHECK(std::string(e.what()) ==
          file.string() + ": file of 1048579 bytes exceeds the 1 MiB limit");
  }
}

TEST_CASE("an unreadable config file is reported with the reason", "[config]") {
  auto what_of = [](const std::filesystem::path& file) -> std::string {
    try {
      (void)load_config_file(file);
    } catch (const ConfigErrors& e) {
      REQUIRE(e.issues().size() == 1);
      return e.what();
    }
    return "accepted";
  };
  CHECK(what_of("/nonexistent/barista.yaml") ==
        "/nonexistent/barista.yaml: cannot read: No such file or directory");
  TempDir dir;
  CHECK(what_of(dir.path()) == dir.path().string() + ": cannot read: Is a directory");
  if (::geteuid() != 0) {  // root reads anything
    auto file = dir.write("secret.yaml", "spool: /x\n");
    std::filesystem::permissions(file, std::filesystem::perms::none);
    CHECK(what_of(file) == file.string() + ": cannot read: Permission denied");
  }
  // Errors found in the text name the file as the user gave it.
  auto bad = dir.write("bad.yaml", "spool: [\n");
  CHECK(what_of(bad).starts_with(bad.string() + ":2:1: YAML syntax error: "));
}

}  // namespace
}  // namespace barista::config

namespace barista::config {
namespace {

TEST_CASE("bad key/per_key/max_throttled values name their place", "[config][keys]") {
  CHECK(error_of(pool_with("    key: host\n")) ==
        "test.yaml:4:10: pool 'p': key: expected none or url_host, got 'host'");
  CHECK(error_of(pool_with("    per_key: {burst: 3}\n"))
            .starts_with("test.yaml:4:15: pool 'p': per_key: unknown key 'burst'"));
  CHECK(error_of(pool_with("    per_key:\n      max_in_flight: 0\n"))
            .starts_with("test.yaml:5:22: pool 'p': per_key.max_in_flight:"));
  CHECK(error_of(pool_with("    per_key: {rate: fast}\n"))
            .starts_with("test.yaml:4:21: pool 'p': per_key.rate:"));
  CHECK(error_of(pool_with("    max_throttled: -1s\n"))
            .starts_with("test.yaml:4:20: pool 'p': max_throttled:"));
  CHECK(error_of(pool_with("    per_key: 3\n")).starts_with("test.yaml:4:14: pool 'p': per_key"));
}

}  // namespace
}  // namespace barista::config
