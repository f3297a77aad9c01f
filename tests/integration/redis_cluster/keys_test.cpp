// Per-key limits, throttles and pauses of a pool shared by three daemons
// (docs/several-machines.md#keys): they hold across all of them, and the slots of a daemon
// killed with -9 are given back within claim_after. The daemons fetch from local HTTP servers
// (http_fetch, key: url_host), which count the requests they answer at once.

#include "tests/integration/harness/http_server.hpp"
#include "tests/integration/redis_cluster/cluster_support.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <thread>

namespace barista::itest::cluster {
namespace {

using namespace std::chrono_literals;

PoolOptions fetching(int max_in_flight, const std::string& claim_after = "10s") {
  PoolOptions options;
  options.plugin = "http_fetch";
  options.plugin_config = "";
  options.claim_after = claim_after;
  options.extra =
      "    key: url_host\n    per_key: {max_in_flight: " + std::to_string(max_in_flight) +
      "}\n    timeout: 20s\n";
  return options;
}

std::string key_of(const HttpServer& site) { return "127.0.0.1:" + std::to_string(site.port()); }

ProgramResult cli(Cluster& c, std::size_t i, std::vector<std::string> args) {
  args.insert(args.begin(), {"--socket", c.daemon(i).socket().string()});
  return run_barista(args);
}

TEST_CASE("redis cluster: per_key.max_in_flight holds across three daemons",
          "[integration][redis][cluster][keys]") {
  if (!have_redis_server()) {
    return;
  }
  HttpServer a({{"/page", {200, "a", 60}}});
  HttpServer b({{"/page", {200, "b", 60}}});
  Cluster c(three(fetching(2)));  // 12 workers in all
  c.start_all();
  constexpr int kJobs = 60;
  const auto id =
      c.submit("sites", kJobs, [&](int i) { return (i % 2 == 0 ? a : b).url("/page"); });
  const auto rec = c.wait_end(id, 60s);
  CHECK(rec.counts.ok == kJobs);
  one_result_per_job(c.results(id), kJobs);
  // Each site saw at most two requests at once, and two: the limit was used, not undercut.
  CHECK(a.most_in_flight() == 2);
  CHECK(b.most_in_flight() == 2);
  CHECK(a.hits("/page") + b.hits("/page") == kJobs);
}

TEST_CASE("redis cluster: a throttle on one daemon holds the key on all of them",
          "[integration][redis][cluster][keys]") {
  if (!have_redis_server()) {
    return;
  }
  // Its first answer is 429 with Retry-After: 2; then pages.
  HttpServer site({{"/page", {200, "page", 0, 1, 429, "Retry-After: 2\r\n"}}});
  Cluster c(three(fetching(1)));
  c.start_all();
  const auto id = c.submit("throttled", 12, [&](int) { return site.url("/page"); });
  // The time of the first request (the 429) and of the next one, from any daemon.
  const auto start = Clock::now();
  while (site.hits("/page") < 1 && Clock::now() < start + 20s) {
    std::this_thread::sleep_for(2ms);
  }
  const auto first = Clock::now();
  while (site.hits("/page") < 2 && Clock::now() < first + 20s) {
    std::this_thread::sleep_for(2ms);
  }
  const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - first);
  INFO(c.logs());
  CHECK(gap >= 1800ms);
  CHECK(gap < 4000ms);
  const auto rec = c.wait_end(id, 30s);
  CHECK(rec.counts.ok == 12);
  int throttled = 0;
  for (const auto& r : c.results(id)) {
    throttled += r.line.find(R"("throttled":1)") != std::string::npos ? 1 : 0;
  }
  CHECK(throttled == 1);
}

TEST_CASE("redis cluster: a key paused on one daemon waits on all; the pause outlives a restart",
          "[integration][redis][cluster][keys]") {
  if (!have_redis_server()) {
    return;
  }
  HttpServer held({{"/page", {200, "held", 0}}});
  HttpServer free_site({{"/page", {200, "free", 0}}});
  Cluster c(three(fetching(2)));
  c.start_all();
  auto r = cli(c, 0, {"pause", kPool, "--key", key_of(held)});
  REQUIRE(r.exit_code == 0);
  const auto id =
      c.submit("paused", 40, [&](int i) { return (i % 2 == 0 ? held : free_site).url("/page"); });
  c.wait_results(id, 20, 20s);
  std::this_thread::sleep_for(500ms);
  CHECK(held.hits("/page") == 0);
  CHECK(free_site.hits("/page") == 20);
  // Every daemon shows the pause, the ones it was not asked of too.
  for (std::size_t i = 0; i < c.size(); ++i) {
    r = cli(c, i, {"status", kPool, "--json"});
    INFO(Cluster::consumer(i) << ": " << r.out);
    CHECK(r.out.find(R"("paused_keys":[")" + key_of(held) + "\"]") != std::string::npos);
  }
  // Restarted, a daemon reads the pause from Redis before it reads a job.
  c.daemon(1).kill9();
  c.daemon(1).start();
  r = cli(c, 1, {"status", kPool, "--json"});
  INFO(r.out);
  CHECK(r.out.find(R"("paused_keys":[")" + key_of(held) + "\"]") != std::string::npos);
  std::this_thread::sleep_for(300ms);
  CHECK(held.hits("/page") == 0);
  // Resumed on another daemon: the held jobs run, one result each.
  r = cli(c, 2, {"resume", kPool, "--key", key_of(held)});
  CHECK(r.exit_code == 0);
  r = cli(c, 0, {"resume", kPool, "--key", key_of(held)});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("is not paused") != std::string::npos);
  const auto rec = c.wait_end(id, 30s);
  CHECK(rec.counts.ok == 40);
  one_result_per_job(c.results(id), 40);
  CHECK(held.hits("/page") == 20);
}

TEST_CASE("redis cluster: the slot of a daemon killed with -9 is given back within claim_after",
          "[integration][redis][cluster][keys]") {
  if (!have_redis_server()) {
    return;
  }
  HttpServer site({{"/hang", {200, "slow", 8000}}, {"/quick", {200, "quick", 0}}});
  Cluster c(three(fetching(1, "2s")));
  c.daemon(0).start();
  const auto first = c.submit("hang", 1, [&](int) { return site.url("/hang"); });
  while (site.hits("/hang") < 1) {
    std::this_thread::sleep_for(5ms);
  }
  c.daemon(1).start();
  c.daemon(2).start();
  // Same site, so the same key: it waits for the one slot, which daemon d1 holds for 8 s.
  const auto second = c.submit("quick", 1, [&](int) { return site.url("/quick"); });
  std::this_thread::sleep_for(300ms);
  CHECK(site.hits("/quick") == 0);
  c.daemon(0).kill9();
  const auto killed = Clock::now();
  // The next request of the site (the quick job, or the hung one taken over) starts once the
  // dead daemon's lease lapses: not at once, and within claim_after (plus a take-over scan).
  while (site.hits("/hang") + site.hits("/quick") < 2 && Clock::now() < killed + 10s) {
    std::this_thread::sleep_for(5ms);
  }
  const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed);
  INFO(c.logs());
  CHECK(after >= 1000ms);
  CHECK(after <= 3000ms);
  for (const auto& batch : {second, first}) {
    const auto rec = c.wait_end(batch, 30s);
    std::string lines;
    for (const auto& r : c.results(batch)) {
      lines += r.line + "\n";
    }
    INFO(lines);
    CHECK(rec.counts.ok == 1);
  }
}

}  // namespace
}  // namespace barista::itest::cluster

namespace barista::itest::cluster {
namespace {

TEST_CASE("redis cluster: a live daemon keeps the entries it holds past claim_after",
          "[integration][redis][cluster][keys]") {
  if (!have_redis_server()) {
    return;
  }
  // A job that runs three times claim_after, and jobs that wait longer than it for a paused
  // key: none is taken over by the other daemons (no second delivery, no second request).
  HttpServer slow({{"/page", {200, "slow", 3000}}});
  HttpServer held({{"/page", {200, "held", 0}}});
  Cluster c(three(fetching(2, "1s")));
  c.start_all();
  REQUIRE(cli(c, 0, {"pause", kPool, "--key", key_of(held)}).exit_code == 0);
  const auto id = c.submit("kept", 7, [&](int i) { return (i == 1 ? slow : held).url("/page"); });
  std::this_thread::sleep_for(2500ms);
  CHECK(held.hits("/page") == 0);
  REQUIRE(cli(c, 1, {"resume", kPool, "--key", key_of(held)}).exit_code == 0);
  const auto rec = c.wait_end(id, 30s);
  CHECK(rec.counts.ok == 7);
  std::string lines;
  int once = 0;
  for (const auto& r : c.results(id)) {
    lines += r.line + "\n";
    once += r.attempts == 1 ? 1 : 0;
  }
  INFO(lines);
  CHECK(once == 7);
  CHECK(slow.hits("/page") == 1);
  CHECK(held.hits("/page") == 6);
}

}  // namespace
}  // namespace barista::itest::cluster
