// Live reloads (docs/reference.md#reload): workers resized and pools added and removed under a
// running batch without losing or repeating a job; a removed pool's batch waits in active/ for its
// return; rejected configs change nothing; a replaced plugin file is picked up; SIGHUP; and the
// daemon keeps answering while a reload is under way.

#include "tests/integration/cli/cli_support.hpp"
#include "tests/integration/core/core_support.hpp"

#include <catch2/catch.hpp>

#include <simdjson.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace barista::itest::cli {
namespace {

namespace fs = std::filesystem;

// One pool as `status --json` shows it; workers -1 when the pool is absent.
struct PoolView {
  std::int64_t workers = -1;
  std::int64_t busy = -1;
};

PoolView pool_view(const Daemon& d, const std::string& name) {
  const auto r = run_cli(with_socket(d, {"status", "--json"}));
  if (r.exit_code != 0) {
    throw HarnessError("barista status failed: " + r.err);
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(r.out);
  for (auto p : doc["pools"].get_array()) {
    if (std::string_view(p["name"].get_string()) == name) {
      return {p["workers"].get_int64(), p["busy"].get_int64()};
    }
  }
  return {};
}

// `barista reload`, which must be applied; its stdout.
std::string reload_ok(const Daemon& d) {
  const auto r = run_cli(with_socket(d, {"reload"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

std::string submit(const Daemon& d, const std::string& pool, const fs::path& file) {
  const auto r = run_cli(with_socket(d, {"submit", pool, file.string()}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return lines_of(r.out).front();
}

// Every id 1..n has exactly one result, and it is ok.
Problems one_ok_result_each(const fs::path& results, int n) {
  Problems problems;
  std::vector<int> seen(static_cast<std::size_t>(n) + 1, 0);
  std::size_t lines = 0;
  for_each_result(results, [&](const JobResult& r) {
    ++lines;
    const int i = std::atoi(r.id.c_str());
    if (i < 1 || i > n) {
      problems.add("unexpected id: " + r.line);
    } else if (++seen[static_cast<std::size_t>(i)] == 2) {
      problems.add("id " + r.id + " has two results");
    }
    if (r.status != "ok") {
      problems.add("not ok: " + r.line);
    }
  });
  for (int i = 1; i <= n; ++i) {
    if (seen[static_cast<std::size_t>(i)] == 0) {
      problems.add("id " + std::to_string(i) + " has no result");
    }
  }
  if (lines != static_cast<std::size_t>(n)) {
    problems.add(std::to_string(lines) + " lines instead of " + std::to_string(n));
  }
  return problems;
}

TEST_CASE("resizing 2 -> 8 -> 1 -> 4 and adding and removing a pool under 20,000 jobs",
          "[integration][reload]") {
  constexpr int kJobs = 20'000;
  const auto echo = [](int workers) {
    return pool("echo", "echo", workers, "    config:\n      delay: 1ms\n");
  };
  Daemon d(echo(2));
  d.start();
  TempDir tmp;
  write_file(tmp.path() / "big.txt",
             text_batch(kJobs, [](int i) { return "job " + std::to_string(i); }));
  write_file(tmp.path() / "side.txt", "s1\ns2\n");
  REQUIRE(submit(d, "echo", tmp.path() / "big.txt") == "big");
  const auto results = [&] { return results_so_far(d, "echo", "big"); };

  REQUIRE(d.wait_until([&] { return results() >= 1000; }, seconds(20)));
  d.set_pools(echo(8) + pool("extra", "echo", 1));
  auto out = reload_ok(d);
  CHECK(out.find("pool 'echo': workers 2 -> 8") != std::string::npos);
  CHECK(out.find("added pool 'extra'") != std::string::npos);
  // Within a second, eight jobs run at once.
  CHECK(d.wait_until([&] { return pool_view(d, "echo").busy == 8; }, milliseconds(1000)));
  // The added pool takes batches.
  CHECK(run_cli(with_socket(d, {"submit", "--wait", "extra", (tmp.path() / "side.txt").string()}))
            .exit_code == 0);

  REQUIRE(d.wait_until([&] { return results() >= 5000; }, seconds(20)));
  d.set_pools(echo(1));
  out = reload_ok(d);
  CHECK(out.find("pool 'echo': workers 8 -> 1") != std::string::npos);
  CHECK(out.find("removed pool 'extra'") != std::string::npos);
  CHECK(pool_view(d, "extra").workers == -1);
  // Within a second, the extra workers have left.
  CHECK(d.wait_until([&] { return pool_view(d, "echo").busy <= 1; }, milliseconds(1000)));
  const auto at_one = results();
  REQUIRE(d.wait_until([&] { return results() >= at_one + 300; }, seconds(20)));

  d.set_pools(echo(4));
  out = reload_ok(d);
  CHECK(out.find("pool 'echo': workers 1 -> 4") != std::string::npos);
  CHECK(pool_view(d, "echo").workers == 4);

  const auto end = d.wait_batch_summary("echo", "big", milliseconds(60'000));
  CHECK(end.folder == "done");
  CHECK(end.summary.ok == kJobs);
  const auto problems = one_ok_result_each(end.dir / "results.jsonl", kJobs);
  INFO(problems.text());
  CHECK(problems.empty());
}

TEST_CASE("a removed pool's unstarted batch waits in active/ and completes when it comes back",
          "[integration][reload]") {
  const auto keep = pool("keep", "echo", 1);
  const auto gone = pool("gone", "fx_slow", 1, "    config:\n      ms: 200ms\n");
  Daemon d(keep + gone);
  d.start();
  TempDir tmp;
  write_file(tmp.path() / "parked.txt", text_batch(10, [](int) { return "sleep"; }));
  REQUIRE(submit(d, "gone", tmp.path() / "parked.txt") == "parked");
  REQUIRE(d.wait_until([&] { return results_so_far(d, "gone", "parked") >= 1; }, seconds(10)));

  d.set_pools(keep);
  CHECK(reload_ok(d).find("removed pool 'gone'") != std::string::npos);
  // The job running at the reload finishes (200 ms); then nothing more starts. Watching for a
  // while is the only way to see that nothing happens.
  std::this_thread::sleep_for(milliseconds(500));
  const auto parked_at = results_so_far(d, "gone", "parked");
  std::this_thread::sleep_for(milliseconds(600));
  CHECK(results_so_far(d, "gone", "parked") == parked_at);
  CHECK(parked_at < 10);
  CHECK(fs::exists(d.active("gone", "parked") / "input.txt"));
  const auto refused =
      run_cli(with_socket(d, {"submit", "gone", (tmp.path() / "parked.txt").string()}));
  CHECK(refused.exit_code == 3);
  CHECK(refused.err == "barista: unknown pool 'gone' (pools: keep)\n");
  CHECK(run_cli(with_socket(d, {"status", "--json"})).out.find("parked") == std::string::npos);

  d.set_pools(keep + gone);
  CHECK(reload_ok(d).find("added pool 'gone'") != std::string::npos);
  const auto end = d.wait_batch_summary("gone", "parked", milliseconds(10'000));
  CHECK(end.folder == "done");
  const auto problems = one_ok_result_each(end.dir / "results.jsonl", 10);
  INFO(problems.text());
  CHECK(problems.empty());
}

TEST_CASE("ten rejected reloads in a row change nothing", "[integration][reload]") {
  const std::string base = pool("echo", "echo", 2, "    config:\n      delay: 10ms\n");
  Daemon d(base);
  d.start();
  TempDir tmp;
  // 2 workers x 10 ms: the batch runs for about 1.5 s, across the rejected reloads.
  write_file(tmp.path() / "during.txt", text_batch(300, [](int i) { return std::to_string(i); }));
  REQUIRE(submit(d, "echo", tmp.path() / "during.txt") == "during");
  const auto before = run_cli(with_socket(d, {"status", "--json"})).out;
  const auto file = d.config_file().string();

  // Each a different mistake, made to the running config's text.
  const auto original = slurp(d.config_file());
  const auto replace = [&](const std::string& from, const std::string& to) {
    auto text = original;
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
  };
  struct Bad {
    std::string text;
    std::string says;     // in the error line
    bool located = true;  // FILE:LINE:COL rather than FILE
  };
  const std::vector<Bad> bad = {
      {original + "    wokers: 4\n", "pool 'echo': unknown key 'wokers' (did you mean 'workers'?)"},
      {replace("workers: 2", "workers: lots"),
       "pool 'echo': workers: expected an integer, got 'lots'"},
      {replace("delay: 10ms", "delay: soon"), "pool 'echo': config.delay: expected a duration"},
      {original + "    timeout: 30 seconds\n", "pool 'echo': timeout: expected a duration"},
      {original + "    on_error: sometimes\n",
       "on_error: expected continue or cancel_all, got 'sometimes'"},
      {replace("plugin: echo", "plugin: no_such_plugin"),
       "no_such_plugin.so not found in plugin_path"},
      {replace("plugin: echo", "plugin: fx_wrong_abi"), "built for SDK ABI"},
      {replace("plugin: echo", "plugin: fx_throwing_factory"), "factory failed: factory exploded"},
      {replace("spool: \"", "spool: \"/var/tmp/elsewhere"),
       "spool: cannot change while baristad runs", false},
      {original + "  broken: [unclosed\n", "YAML syntax error"},
  };
  const std::regex located(
      "^" + std::regex_replace(file, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
      R"(:\d+:\d+: )");
  for (const auto& b : bad) {
    write_file(d.config_file(), b.text);
    const auto r = run_cli(with_socket(d, {"reload"}));
    INFO("config:\n" << b.text << "stderr:\n" << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
    const auto lines = lines_of(r.err);
    REQUIRE(lines.size() >= 2);
    CHECK(lines[0] == "barista: reload rejected; baristad keeps running config generation 1:");
    CHECK(lines[1].starts_with(file + ":"));
    CHECK(std::regex_search(lines[1], located) == b.located);
    CHECK(lines[1].find(b.says) != std::string::npos);
  }
  // The pools as they were (busy and queued move with the batch).
  const auto settled = [](std::string json) {
    static const std::regex kMoving(R"re("(busy|queued|done|total|failed)":\d+)re");
    return std::regex_replace(json, kMoving, "$1");
  };
  const auto pools_of = [&](const std::string& json) {
    return settled(json.substr(0, json.find(R"("batches")")));
  };
  CHECK(pools_of(run_cli(with_socket(d, {"status", "--json"})).out) == pools_of(before));
  const auto end = d.wait_batch("echo", "during");
  CHECK(end.folder == "done");
  CHECK(end.summary.ok == 300);
  // And a new batch still runs on the old config.
  write_file(tmp.path() / "later.txt", "a\n");
  CHECK(run_cli(with_socket(d, {"submit", "--wait", "echo", (tmp.path() / "later.txt").string()}))
            .exit_code == 0);
}

TEST_CASE("a plugin file replaced at the same path is picked up by the next reload",
          "[integration][reload]") {
  TempDir plugins;
  const auto so = plugins.path() / "echo.so";
  fs::copy_file(plugin_dir() / "echo.so", so);
  Daemon d(pool("swap", so.string(), 1));
  d.start();
  TempDir tmp;
  write_file(tmp.path() / "one.txt", "hello\n");
  REQUIRE(run_cli(with_socket(d, {"submit", "--wait", "swap", (tmp.path() / "one.txt").string()}))
              .exit_code == 0);
  CHECK(d.wait_batch("swap", "one").results.at(0).output == "hello");

  // Another plugin's file copied over it in place, as `cp` does.
  fs::copy_file(fixture_dir() / "fx_version_2.so", so, fs::copy_options::overwrite_existing);
  const auto out = reload_ok(d);
  CHECK(out.find("pool 'swap': plugin " + so.string()) != std::string::npos);
  write_file(tmp.path() / "two.txt", "hello\n");
  REQUIRE(run_cli(with_socket(d, {"submit", "--wait", "swap", (tmp.path() / "two.txt").string()}))
              .exit_code == 0);
  CHECK(d.wait_batch("swap", "two").results.at(0).output == "v2: hello");
  // Unchanged since: the next reload changes nothing.
  CHECK(reload_ok(d).find("(no changes)") != std::string::npos);
}

TEST_CASE("a reload keeps each worker's processor unless the plugin or its config changed",
          "[integration][reload]") {
  // fx_counter outputs the serial number of the processor that ran the job: 1 for the first the
  // factory made, and so on.
  const auto counted = [](int workers, const std::string& extra) {
    return "  counted:\n    plugin: fx_counter\n    workers: " + std::to_string(workers) + "\n" +
           extra;
  };
  Daemon d(counted(1, ""));
  d.start();
  TempDir tmp;
  int serial = 0;
  // The processors that ran a batch of 20 jobs, as their serial numbers.
  const auto run_batch = [&] {
    const auto file = tmp.path() / ("b" + std::to_string(++serial) + ".txt");
    write_file(file, text_batch(20, [](int i) { return std::to_string(i); }));
    const auto id = submit(d, "counted", file);
    std::set<std::string> ran;
    for (const auto& r : d.wait_batch("counted", id).results) {
      ran.insert(r.output.value_or("?"));
    }
    return ran;
  };
  const auto first = run_batch();
  REQUIRE(first.size() == 1);
  // Settings only (retries, timeout, then workers): the worker keeps its processor.
  d.set_pools(counted(1, "    retries: 2\n    timeout: 5s\n"));
  reload_ok(d);
  CHECK(run_batch() == first);
  d.set_pools(counted(2, "    retries: 2\n    timeout: 5s\n"));
  reload_ok(d);
  const auto grown = run_batch();
  CHECK(grown.size() <= 2);
  // The plugin's config changed: every worker gets a new processor, made for that config.
  d.set_pools(counted(2, "    retries: 2\n    timeout: 5s\n    config:\n      note: v2\n"));
  reload_ok(d);
  const auto renewed = run_batch();
  CHECK_FALSE(renewed.empty());
  for (const auto& s : renewed) {
    CHECK(first.count(s) == 0);
    CHECK(grown.count(s) == 0);
  }
}

TEST_CASE("SIGHUP reloads like barista reload", "[integration][reload]") {
  Daemon d(pool("echo", "echo", 1));
  d.start();
  d.set_pools(pool("echo", "echo", 3) + pool("more", "echo", 1));
  d.signal(SIGHUP);
  CHECK(d.wait_until(
      [&] { return pool_view(d, "echo").workers == 3 && pool_view(d, "more").workers == 1; },
      seconds(10)));
  CHECK(d.wait_log("config generation 2 applied", milliseconds(5000)));

  // A bad config through SIGHUP is rejected the same way: the daemon runs on, unchanged.
  d.edit_config([](std::string text) { return text + "    wokers: 2\n"; });
  d.signal(SIGHUP);
  CHECK(d.wait_log("reload rejected", milliseconds(5000)));
  CHECK(d.log().find("unknown key 'wokers'") != std::string::npos);
  CHECK(pool_view(d, "echo").workers == 3);
  CHECK(pool_view(d, "more").workers == 1);
  const auto r = run_cli(with_socket(d, {"reload"}));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("config generation 2:") != std::string::npos);
}

// What the daemon answered while a reload ran: status and a small `submit --wait`, asked again
// and again until the reload ended.
struct Meanwhile {
  int rounds = 0;
  double slowest_ms = 0;  // the slowest round
  bool all_ok = true;
  std::string first_status;
};

Meanwhile ask_during(const Daemon& d, const CliProcess& reload, const std::string& pool_name) {
  TempDir tmp;
  write_file(tmp.path() / "meanwhile.txt", "a\nb\n");
  Meanwhile m;
  while (reload.running()) {
    const auto asked = Clock::now();
    const auto status = run_cli(with_socket(d, {"status", "--json"}));
    const auto submitted = run_cli(
        with_socket(d, {"submit", "--wait", "--name", "m" + std::to_string(m.rounds) + ".txt",
                        pool_name, (tmp.path() / "meanwhile.txt").string()}));
    m.slowest_ms = std::max(m.slowest_ms, ms_between(asked, Clock::now()));
    m.all_ok = m.all_ok && status.exit_code == 0 && submitted.exit_code == 0;
    if (m.rounds++ == 0) {
      m.first_status = status.out;
    }
  }
  return m;
}

TEST_CASE("submit and status are answered while a reload is under way", "[integration][reload]") {
  Daemon d(pool("echo", "echo", 1));
  d.start();
  // Adding a pool whose factory takes 1.5 s per processor: a reload of 3 s.
  const auto slow_plugin = fs::path(BARISTA_CLI_FIXTURE_DIR) / "cli_slow_factory.so";
  d.set_pools(pool("echo", "echo", 1) + pool("sluggish", slow_plugin.string(), 2,
                                             "    config:\n      factory_delay: 1500ms\n"));
  const auto started = Clock::now();
  CliProcess reload(with_socket(d, {"reload"}));
  REQUIRE(d.wait_log(": reload", milliseconds(5000)));
  const auto m = ask_during(d, reload, "echo");
  const auto r = reload.wait(seconds(20));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("added pool 'sluggish'") != std::string::npos);
  CHECK(ms_between(started, Clock::now()) >= 2900);
  // Answered all along, quickly, and before the reload was applied.
  CHECK(m.rounds >= 3);
  CHECK(m.all_ok);
  CHECK(m.slowest_ms < 1000);
  CHECK(m.first_status.find("sluggish") == std::string::npos);
}

// Removes pool `back` while its 2 s job runs, then starts the reload that adds it back, which has
// to wait for that job before the pool's batches can be resumed.
struct Returning {
  std::string keep = pool("keep", "echo", 1);
  std::string back = pool("back", "fx_slow", 1, "    config:\n      ms: 2s\n");
  std::string extra = "shutdown_timeout: 10s\n";
  Daemon d{keep + back, extra};
  TempDir tmp;
  std::unique_ptr<CliProcess> reload;

  Returning() {
    d.start();
    write_file(tmp.path() / "slow.txt", "a\nb\n");
    write_file(tmp.path() / "quick.txt", "flaky-1\nflaky-1\n");
    REQUIRE(submit(d, "back", tmp.path() / "slow.txt") == "slow");
    REQUIRE(d.wait_until([&] { return pool_view(d, "back").busy == 1; }, seconds(10)));
    d.set_pools(keep, extra);
    reload_ok(d);
    d.set_pools(keep + back, extra);
    reload = std::make_unique<CliProcess>(with_socket(d, {"reload"}));
  }

  // The batch that was running when the pool was removed completes, once.
  void check_slow_batch() {
    const auto end = d.wait_batch_summary("back", "slow", milliseconds(10'000));
    const auto problems = one_ok_result_each(end.dir / "results.jsonl", 2);
    INFO(problems.text());
    CHECK(problems.empty());
  }
};

TEST_CASE("the daemon answers while a reload waits for a re-added pool's old self",
          "[integration][reload]") {
  Returning r;
  const auto m = ask_during(r.d, *r.reload, "keep");
  const auto done = r.reload->wait(seconds(20));
  INFO(done.err);
  CHECK(done.exit_code == 0);
  CHECK(done.out.find("added pool 'back'") != std::string::npos);
  CHECK(m.rounds >= 3);
  CHECK(m.all_ok);
  CHECK(m.slowest_ms < 1000);
  r.check_slow_batch();
}

// While the reload waits for the removed pool to let go, the returning pool is already in the
// pool map: a batch submitted then is claimed by it, and its recover() must not resume it again.
TEST_CASE("batches submitted to a pool while it comes back run once", "[integration][reload]") {
  Returning r;
  std::vector<std::string> accepted;
  for (int i = 0; r.reload->running(); ++i) {
    const auto sent =
        run_cli(with_socket(r.d, {"submit", "--name", "q" + std::to_string(i) + ".txt", "back",
                                  (r.tmp.path() / "quick.txt").string()}));
    if (sent.exit_code == 0) {
      accepted.push_back(lines_of(sent.out).front());
    }
  }
  CHECK(r.reload->wait(seconds(20)).exit_code == 0);
  Problems problems;
  for (const auto& id : accepted) {
    const auto end = r.d.wait_batch_summary("back", id, milliseconds(10'000));
    const auto each = one_ok_result_each(end.dir / "results.jsonl", 2);
    if (!each.empty()) {
      problems.add("batch " + id + ": " + each.text());
    }
  }
  INFO(accepted.size() << " batches accepted during the reload");
  INFO(problems.text());
  CHECK(problems.empty());
  CHECK(r.d.log().find("cannot open its input") == std::string::npos);
  r.check_slow_batch();
}

}  // namespace
}  // namespace barista::itest::cli
