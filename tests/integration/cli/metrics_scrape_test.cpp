// The running daemon's /metrics (issue: live operations, item 6): scraped over HTTP while it
// works, the numbers follow what a user did: jobs by status, batches, workers, reloads.

#include "tests/integration/cli/cli_support.hpp"
#include "tests/integration/harness/http_client.hpp"

#include <catch2/catch.hpp>

#include <regex>
#include <string>
#include <thread>

namespace barista::itest::cli {
namespace {

// GET `url`; the body, or a failure naming curl's error.
std::string scrape(const std::string& url) {
  const auto reply = http_get(url);
  INFO(url << ": " << reply.error);
  REQUIRE(reply.error.empty());
  REQUIRE(reply.status == 200);
  return reply.body;
}

// The value of the sample line that starts with `series` ("name{labels}"), or -1.
double sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) {
    return -1;
  }
  return std::stod(text.substr(at + series.size() + 2));
}

// The URL the daemon serves its metrics at: it listens on port 0 (the kernel picks one), and
// the log names it.
std::string metrics_url(Daemon& d) {
  REQUIRE(d.wait_log("/metrics", std::chrono::seconds(5)));
  std::smatch m;
  const auto log = d.log();
  REQUIRE(std::regex_search(log, m,
                            std::regex(R"(metrics: serving (http://127\.0\.0\.1:\d+/metrics))")));
  return m[1];
}

TEST_CASE("a running baristad serves its metrics", "[integration][cli][metrics]") {
  Daemon d(pool("echo", "echo", 2, "    config:\n      fail_on: bad\n"), "metrics: 127.0.0.1:0\n");
  d.start();
  const std::string url = metrics_url(d);

  auto text = scrape(url);
  CHECK(sample(text, R"(barista_workers{pool="echo"})") == 2);
  CHECK(sample(text, R"(barista_jobs_total{pool="echo",status="ok"})") == 0);
  CHECK(sample(text, "barista_config_generation") == 1);

  TempDir tmp;
  write_file(tmp.path() / "five.txt", "a\nb\nbad\nc\nd\n");
  const auto r =
      run_cli(with_socket(d, {"submit", "echo", (tmp.path() / "five.txt").string(), "--wait"}));
  CHECK(r.exit_code == 1);
  text = scrape(url);
  CHECK(sample(text, R"(barista_jobs_total{pool="echo",status="ok"})") == 4);
  CHECK(sample(text, R"(barista_jobs_total{pool="echo",status="failed"})") == 1);
  CHECK(sample(text, R"(barista_batches_total{pool="echo",state="done"})") == 1);
  CHECK(sample(text, R"(barista_job_duration_seconds_count{pool="echo"})") == 5);
  CHECK(sample(text, R"(barista_queue_depth{pool="echo"})") == 0);
  CHECK(sample(text, R"(barista_workers_busy{pool="echo"})") == 0);

  // A rejected reload, then an applied one that resizes the pool.
  d.edit_config([](std::string c) { return c + "bogus_key: 1\n"; });
  CHECK(run_cli(with_socket(d, {"reload"})).exit_code == 1);
  d.set_pools(pool("echo", "echo", 3), "metrics: 127.0.0.1:0\n");
  REQUIRE(run_cli(with_socket(d, {"reload"})).exit_code == 0);
  // The endpoint stays where it was while `metrics:` is unchanged.
  text = scrape(url);
  CHECK(sample(text, R"(barista_reloads_total{result="rejected"})") == 1);
  CHECK(sample(text, R"(barista_reloads_total{result="ok"})") == 1);
  CHECK(sample(text, "barista_config_generation") == 2);
  CHECK(sample(text, R"(barista_workers{pool="echo"})") == 3);
}

TEST_CASE("metrics count throttles, blocked keys and the oldest queued job's age",
          "[integration][cli][metrics][keys]") {
  Daemon d(pool("slow", "fx_slow", 1, "    config:\n      ms: 1ms\n"), "metrics: 127.0.0.1:0\n");
  d.start();
  const std::string url = metrics_url(d);
  CHECK(sample(scrape(url), R"(barista_jobs_throttled_total{pool="slow"})") == 0);
  REQUIRE(run_cli(with_socket(d, {"pause", "slow", "--key", "k"})).exit_code == 0);
  d.drop("slow", "t.jsonl",
         R"({"id":"t","key":"a","payload":"throttle-50-2"})"
         "\n"
         R"({"id":"w","key":"k","payload":"x"})"
         "\n");
  REQUIRE(d.wait_until(
      [&] { return sample(scrape(url), R"(barista_jobs_throttled_total{pool="slow"})") == 2; },
      std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto text = scrape(url);
  CHECK(sample(text, R"(barista_keys_blocked{pool="slow"})") == 1);  // the paused key
  CHECK(sample(text, R"(barista_oldest_queued_seconds{pool="slow"})") >= 0.2);
  REQUIRE(run_cli(with_socket(d, {"resume", "slow", "--key", "k"})).exit_code == 0);
  d.wait_batch("slow", "t");
  CHECK(sample(scrape(url), R"(barista_oldest_queued_seconds{pool="slow"})") == 0);
}

}  // namespace
}  // namespace barista::itest::cli
