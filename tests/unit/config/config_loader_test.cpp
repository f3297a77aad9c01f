// What a valid config file turns into: defaults, every key, paths.

#include "daemon/config/config_loader.hpp"
#include "tests/unit/config/config_test_util.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>

namespace barista::config {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

TEST_CASE("an empty config file means every default and no pools", "[config]") {
  for (std::string_view text : {"", "# nothing here\n", "---\n", "~\n"}) {
    auto cfg = parse_config(text, "/etc/barista/barista.yaml");
    CHECK(cfg.file == "/etc/barista/barista.yaml");
    CHECK(cfg.spool == "/var/lib/barista");
    CHECK(cfg.control_socket == "/run/barista/barista.sock");
    CHECK(cfg.plugin_path == std::vector<std::filesystem::path>{BARISTA_DEFAULT_PLUGIN_DIR});
    CHECK(cfg.log_level == "info");
    CHECK_FALSE(cfg.metrics.has_value());
    CHECK(cfg.shutdown_timeout == 30s);
    CHECK(cfg.pools.empty());
  }
  CHECK(parse_config("pools:\n", "b.yaml").pools.empty());
  CHECK(parse_config("pools: {}\n", "b.yaml").pools.empty());
}

TEST_CASE("a pool with only a plugin gets the documented defaults", "[config]") {
  auto cfg = parse_config("pools:\n  scrape:\n    plugin: echo\n", "test.yaml");
  REQUIRE(cfg.pools.size() == 1);
  const auto& pool = cfg.pools[0];
  CHECK(pool.name == "scrape");
  CHECK(pool.plugin == "echo");
  CHECK(pool.workers == 1);
  CHECK(pool.queue == 64);
  CHECK(pool.on_error == OnError::kContinue);
  CHECK(pool.retries == 0);
  CHECK(pool.backoff == 100ms);
  CHECK(pool.max_backoff == 30s);
  CHECK_FALSE(pool.timeout.has_value());
  CHECK_FALSE(pool.rate.has_value());
  CHECK(pool.max_job_bytes == 1024U * 1024U);
  CHECK(pool.max_crashes == 2);
  CHECK(pool.plugin_config.keys().empty());
  CHECK_FALSE(pool.redis.has_value());
  CHECK(pool.location.file == "test.yaml");
  CHECK(pool.location.line == 2);
  CHECK(pool.location.column == 3);
  CHECK(pool.plugin_location.line == 3);
  CHECK(pool.plugin_location.column == 13);
  CHECK(cfg.find_pool("scrape") == &pool);
  CHECK(cfg.find_pool("other") == nullptr);
}

TEST_CASE("every documented key is read", "[config]") {
  constexpr std::string_view kText = R"(spool: /srv/spool
control_socket: /srv/run/b.sock
plugin_path: [/opt/p1, /opt/p2]
log_level: debug
metrics: 127.0.0.1:9464
shutdown_timeout: 5m
pools:
  scrape:
    plugin: http_fetch
    workers: 10
    queue: 100
    on_error: cancel_all
    retries: 2
    backoff: 200ms
    max_backoff: 10s
    timeout: 30s
    rate: 50/s
    max_job_bytes: 64KiB
    max_crashes: 3
    config:
      user_agent: barista/1.0
  b-2_x:
    plugin: /opt/plugins/echo.so
    rate: 7/m
  hourly:
    plugin: echo
    rate: 1/h
    max_job_bytes: 512
)";
  auto cfg = parse_config(kText, "/etc/b.yaml");
  CHECK(cfg.spool == "/srv/spool");
  CHECK(cfg.control_socket == "/srv/run/b.sock");
  CHECK(cfg.plugin_path == std::vector<std::filesystem::path>{"/opt/p1", "/opt/p2"});
  CHECK(cfg.log_level == "debug");
  CHECK(cfg.metrics == "127.0.0.1:9464");
  CHECK(cfg.shutdown_timeout == 5min);
  REQUIRE(cfg.pools.size() == 3);

  const auto& scrape = cfg.pools[0];
  CHECK(scrape.name == "scrape");
  CHECK(scrape.plugin == "http_fetch");
  CHECK(scrape.workers == 10);
  CHECK(scrape.queue == 100);
  CHECK(scrape.on_error == OnError::kCancelAll);
  CHECK(scrape.retries == 2);
  CHECK(scrape.backoff == 200ms);
  CHECK(scrape.max_backoff == 10s);
  CHECK(scrape.timeout == std::optional<std::chrono::milliseconds>(30s));
  CHECK(scrape.rate == std::optional<Rate>(Rate{50, 1s}));
  CHECK(scrape.max_job_bytes == 64U * 1024U);
  CHECK(scrape.max_crashes == 3);
  CHECK(scrape.plugin_config.get_string("user_agent", "") == "barista/1.0");

  CHECK(cfg.pools[1].name == "b-2_x");
  CHECK(cfg.pools[1].plugin == "/opt/plugins/echo.so");
  CHECK(cfg.pools[1].rate == std::optional<Rate>(Rate{7, 60s}));
  CHECK(cfg.pools[2].rate == std::optional<Rate>(Rate{1, 3600s}));
  CHECK(cfg.pools[2].max_job_bytes == 512);
}

TEST_CASE("optional keys may be left empty", "[config]") {
  auto cfg = parse_config(
      "metrics:\npools:\n  p:\n    plugin: echo\n    timeout:\n    rate:\n"
      "    config:\n",
      "t.yaml");
  CHECK_FALSE(cfg.metrics.has_value());
  REQUIRE(cfg.pools.size() == 1);
  CHECK_FALSE(cfg.pools[0].timeout.has_value());
  CHECK_FALSE(cfg.pools[0].rate.has_value());
  CHECK(cfg.pools[0].plugin_config.keys().empty());
}

TEST_CASE("limits at the edges of their ranges are accepted", "[config]") {
  auto cfg = parse_config(R"(shutdown_timeout: 0s
metrics: "[::1]:0"
pools:
  a:
    plugin: echo
    workers: 1024
    queue: 1
    retries: 0
    backoff: 0ms
    max_crashes: 1
    max_job_bytes: 1
    timeout: 1ms
)",
                          "t.yaml");
  CHECK(cfg.shutdown_timeout == 0ms);
  CHECK(cfg.metrics == "[::1]:0");
  CHECK(cfg.pools[0].workers == 1024);
  CHECK(cfg.pools[0].queue == 1);
  CHECK(cfg.pools[0].backoff == 0ms);
  CHECK(cfg.pools[0].max_crashes == 1);
  CHECK(cfg.pools[0].max_job_bytes == 1);
  CHECK(cfg.pools[0].timeout == std::optional<std::chrono::milliseconds>(1ms));
  // a 64-character name is the longest allowed
  const std::string name(64, 'n');
  CHECK(parse_config("pools:\n  " + name + ":\n    plugin: echo\n", "t.yaml").pools[0].name ==
        name);
}

TEST_CASE("plugin_path also takes a single folder", "[config]") {
  auto cfg = parse_config("plugin_path: /opt/plugins\n", "/etc/b.yaml");
  CHECK(cfg.plugin_path == std::vector<std::filesystem::path>{"/opt/plugins"});
  CHECK(parse_config("plugin_path: []\n", "/etc/b.yaml").plugin_path.empty());
}

TEST_CASE("log_level takes each of its five values", "[config]") {
  for (std::string level : {"trace", "debug", "info", "warn", "error"}) {
    CHECK(parse_config("log_level: " + level + "\n", "t.yaml").log_level == level);
  }
}

TEST_CASE("relative paths resolve against the config file's folder", "[config]") {
  constexpr std::string_view kText = R"(spool: var/spool
control_socket: ./run/../run/b.sock
plugin_path: [plugins, /abs/plugins, ../shared]
pools:
  named:
    plugin: echo
  local:
    plugin: ./my/echo.so
  up:
    plugin: ../lib/x.so
)";
  auto cfg = parse_config(kText, "/etc/barista/conf/b.yaml");
  CHECK(cfg.file == "/etc/barista/conf/b.yaml");
  CHECK(cfg.spool == "/etc/barista/conf/var/spool");
  CHECK(cfg.control_socket == "/etc/barista/conf/run/b.sock");
  CHECK(cfg.plugin_path == std::vector<std::filesystem::path>{
                               "/etc/barista/conf/plugins", "/abs/plugins", "/etc/barista/shared"});
  CHECK(cfg.pools[0].plugin == "echo");  // a bare name is looked up in plugin_path later
  CHECK(cfg.pools[1].plugin == "/etc/barista/conf/my/echo.so");
  CHECK(cfg.pools[2].plugin == "/etc/barista/lib/x.so");
}

TEST_CASE("a config file given by a relative path is known by its absolute path", "[config]") {
  TempDir dir;
  dir.write("sub/b.yaml", "spool: spool\n");
  std::array<char, 4096> cwd{};
  REQUIRE(::getcwd(cwd.data(), cwd.size()) != nullptr);
  REQUIRE(::chdir(dir.path().c_str()) == 0);
  DaemonConfig cfg;
  try {
    cfg = load_config_file("sub/b.yaml");
  } catch (...) {
    REQUIRE(::chdir(cwd.data()) == 0);
    throw;
  }
  REQUIRE(::chdir(cwd.data()) == 0);
  CHECK(cfg.file == dir.path() / "sub/b.yaml");
  CHECK(cfg.file.is_absolute());
  CHECK(cfg.spool == dir.path() / "sub/spool");
}

TEST_CASE("load_config_file reads the file it is given", "[config]") {
  TempDir dir;
  auto file = dir.write("b.yaml", "log_level: warn\npools:\n  p:\n    plugin: echo\n");
  auto cfg = load_config_file(file);
  CHECK(cfg.file == file);
  CHECK(cfg.log_level == "warn");
  REQUIRE(cfg.pools.size() == 1);
  CHECK(cfg.pools[0].location.file == file.string());
}

TEST_CASE("the config map reaches the plugin with every node's location", "[config]") {
  constexpr std::string_view kText = R"(pools:
  p:
    plugin: echo
    config:
      delay: 250ms
      name: "quoted: yes"
      empty:
      list: [a, b]
      nested:
        depth: 2
        flag: true
      bad_delay: soon
)";
  auto cfg = parse_config(kText, "t.yaml");
  const auto& pc = cfg.pools[0].plugin_config;
  CHECK(pc.keys() ==
        std::vector<std::string>{"delay", "name", "empty", "list", "nested", "bad_delay"});
  CHECK(pc.get_duration("delay", 0ms) == 250ms);
  CHECK(pc.get_string("name", "") == "quoted: yes");
  CHECK(pc.find("empty")->kind == ConfigValue::Kind::kNull);
  CHECK(pc.get_string_list("list", {}) == std::vector<std::string>{"a", "b"});

  const auto* delay = pc.find("delay");
  CHECK(delay->line == 5);
  CHECK(delay->column == 14);
  const auto* list = pc.find("list");
  REQUIRE(list->kind == ConfigValue::Kind::kList);
  CHECK(list->line == 8);
  CHECK(list->column == 13);
  CHECK(list->items[1].line == 8);
  CHECK(list->items[1].column == 17);
  const auto* nested = pc.find("nested");
  REQUIRE(nested->kind == ConfigValue::Kind::kMap);
  REQUIRE(nested->map.size() == 2);
  CHECK(nested->map[1].first == "flag");
  CHECK(nested->map[1].second.scalar == "true");
  CHECK(nested->map[1].second.line == 11);
  CHECK(nested->map[1].second.column == 15);

  // A plugin's error about a value carries that value's place.
  try {
    (void)pc.get_duration("bad_delay", 0ms);
    FAIL("bad_delay was accepted");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "bad_delay");
    CHECK(e.line() == 12);
    CHECK(e.column() == 18);
  }
}

TEST_CASE("a redis section is read with its defaults", "[config]") {
  std::array<char, 256> host{};
  REQUIRE(::gethostname(host.data(), host.size() - 1) == 0);
  auto cfg = parse_config(
      "pools:\n  scrape:\n    plugin: echo\n    redis:\n      url: redis://127.0.0.1:6379/0\n",
      "t.yaml");
  REQUIRE(cfg.pools[0].redis.has_value());
  const auto& redis = *cfg.pools[0].redis;
  CHECK(redis.url == "redis://127.0.0.1:6379/0");
  CHECK(redis.host == "127.0.0.1");
  CHECK(redis.port == 6379);
  CHECK(redis.db == 0);
  CHECK(redis.password.empty());
  CHECK(redis.stream == "barista:scrape");
  CHECK(redis.group == "barista");
  CHECK(redis.consumer == std::string(host.data()));
  CHECK(redis.claim_after == 30s);
  CHECK(redis.results_ttl == 7 * 24h);
}

TEST_CASE("every key of a redis section is read", "[config]") {
  auto cfg = parse_config(R"(pools:
  scrape:
    plugin: echo
    redis:
      url: "redis://:s3cr:et@redis.example:6380/3"
      stream: jobs:scrape
      group: crawlers
      consumer: web-1
      claim_after: 45s
      results_ttl: 2d
  other:
    plugin: echo
    redis: {url: "redis://[::1]:7000"}
)",
                          "t.yaml");
  const auto& redis = *cfg.pools[0].redis;
  CHECK(redis.host == "redis.example");
  CHECK(redis.port == 6380);
  CHECK(redis.db == 3);
  CHECK(redis.password == "s3cr:et");
  CHECK(redis.stream == "jobs:scrape");
  CHECK(redis.group == "crawlers");
  CHECK(redis.consumer == "web-1");
  CHECK(redis.claim_after == 45s);
  CHECK(redis.results_ttl == 48h);
  const auto& other = *cfg.pools[1].redis;
  CHECK(other.host == "[::1]");
  CHECK(other.port == 7000);
  CHECK(other.db == 0);
  CHECK(other.stream == "barista:other");
}

}  // namespace
}  // namespace barista::config
