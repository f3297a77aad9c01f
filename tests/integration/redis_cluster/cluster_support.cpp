#include "tests/integration/redis_cluster/cluster_support.hpp"

#include "tests/integration/harness/http_client.hpp"

#include "daemon/common/fs.hpp"

#include <catch2/catch.hpp>

#include <charconv>
#include <csignal>
#include <regex>
#include <thread>
#include <utility>

namespace barista::itest::cluster {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kRedisTimeout{2000};
constexpr std::size_t kAddPerTrip = 1000;

std::string now_iso() { return common::iso8601_utc(std::chrono::system_clock::now()); }

// Polls `pred` every 20 ms until it holds; false after `timeout`.
bool poll_until(const std::function<bool()>& pred, milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

}  // namespace

bool have_redis_server() {
  if (!testing::RedisServer::available()) {
    WARN("skipped: " << testing::RedisServer::kBinary << " is not installed");
    return false;
  }
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}

std::string pool_yaml(const PoolOptions& options, const std::string& url,
                      const std::string& consumer) {
  std::string y = std::string("  ") + kPool + ":\n";
  y += "    plugin: " + options.plugin + "\n";
  y += "    workers: " + std::to_string(options.workers) + "\n";
  y += "    queue: " + std::to_string(options.queue) + "\n";
  y += "    on_error: " + options.on_error + "\n";
  y += "    max_crashes: " + std::to_string(options.max_crashes) + "\n";
  if (!options.plugin_config.empty()) {
    y += "    config: " + options.plugin_config + "\n";
  }
  y += options.extra;
  y += "    redis:\n";
  y += "      url: " + url + "\n";
  y += "      consumer: " + consumer + "\n";
  y += "      claim_after: " + options.claim_after + "\n";
  return y;
}

Cluster::Cluster(const std::vector<PoolOptions>& pools, std::string appendfsync)
    : server_(std::move(appendfsync)) {
  for (std::size_t i = 0; i < pools.size(); ++i) {
    // metrics on a port the kernel picks: the log names it
    daemons_.push_back(std::make_unique<Daemon>(pool_yaml(pools[i], server_.url(), consumer(i)),
                                                "metrics: 127.0.0.1:0\nshutdown_timeout: 5s\n"));
  }
}

void Cluster::start_all() {
  for (auto& d : daemons_) {
    d->start();
  }
}

redis::StreamStore& Cluster::store() {
  if (!store_ || !store_->client().connected()) {
    store_.reset();
    config::RedisConfig cfg;
    cfg.url = server_.url();
    cfg.host = server_.host();
    cfg.port = server_.port();
    cfg.stream = kStream;
    cfg.group = kGroup;
    cfg.consumer = "itest";
    cfg.claim_after = std::chrono::seconds(1);
    cfg.results_ttl = std::chrono::hours(1);
    store_ = std::make_unique<redis::StreamStore>(cfg, 1U << 20, kRedisTimeout);
  }
  return *store_;
}

std::string Cluster::submit(const std::string& wanted_id, int n,
                            const std::function<std::string(int)>& payload, bool cancel_all) {
  auto& s = store();
  const auto id = s.begin_batch(wanted_id, kPool, cancel_all, now_iso());
  std::vector<std::pair<std::string, std::string>> jobs;
  jobs.reserve(kAddPerTrip);
  for (int i = 1; i <= n; ++i) {
    jobs.emplace_back(std::to_string(i), payload(i));
    if (jobs.size() == kAddPerTrip || i == n) {
      s.add_jobs(id, jobs);
      jobs.clear();
    }
  }
  s.end_batch(id, static_cast<std::uint64_t>(n), now_iso(), std::chrono::hours(1));
  return id;
}

std::optional<redis::BatchRecord> Cluster::record(const std::string& id) {
  const auto until = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    try {
      return store().batch(id);
    } catch (const redis::RedisError&) {
      store_.reset();
      if (Clock::now() >= until) {
        throw;
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
}

std::size_t Cluster::result_count(const std::string& id) {
  return static_cast<std::size_t>(
      store().client().command({"LLEN", redis::lines_key(id)}).integer());
}

std::vector<JobResult> Cluster::results(const std::string& id, std::size_t from) {
  std::vector<JobResult> out;
  for (const auto& line : store().result_lines(id, from)) {
    out.push_back(parse_result_line(line));
  }
  return out;
}

redis::BatchRecord Cluster::wait_end(const std::string& id, milliseconds timeout) {
  std::optional<redis::BatchRecord> last;
  const bool ended = poll_until(
      [&] {
        last = record(id);
        return last && last->ended();
      },
      timeout);
  INFO("batch " << id << " record: " << (last ? redis::summary_json(*last) : "(none)") << "pending "
                << pending_total() << ", stream length " << stream_length() << "\n"
                << logs());
  REQUIRE(ended);
  return *last;
}

void Cluster::wait_results(const std::string& id, std::size_t n, milliseconds timeout) {
  const bool reached = poll_until([&] { return result_count(id) >= n; }, timeout);
  INFO("results of " << id << ": " << result_count(id) << " of the " << n << " awaited\n"
                     << logs());
  REQUIRE(reached);
}

std::map<std::string, std::string> Cluster::pending_jobs(const std::string& consumer) {
  auto& client = store().client();
  const auto pending = client.command({"XPENDING", kStream, kGroup, "-", "+", "1000000", consumer});
  std::vector<std::vector<std::string>> ranges;
  for (const auto& p : pending.elements()) {
    const auto& stream_id = p.at(0).str();
    ranges.push_back({"XRANGE", kStream, stream_id, stream_id});
  }
  std::map<std::string, std::string> out;
  if (ranges.empty()) {
    return out;
  }
  for (const auto& reply : client.pipeline(ranges)) {
    for (const auto& entry : reply.elements()) {
      const auto& fields = entry.at(1);
      for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields.at(i).str() == "id") {
          out[entry.at(0).str()] = fields.at(i + 1).str();
        }
      }
    }
  }
  return out;
}

long long Cluster::pending_total() {
  try {
    return store().client().command({"XPENDING", kStream, kGroup}).at(0).integer();
  } catch (const redis::RedisError&) {
    store_.reset();
    return -1;
  }
}

long long Cluster::stream_length() {
  try {
    return store().client().command({"XLEN", kStream}).integer();
  } catch (const redis::RedisError&) {
    store_.reset();
    return -1;
  }
}

double Cluster::jobs_metric(std::size_t i, const std::string& status) {
  auto& url = metrics_urls_[i];
  if (url.empty()) {
    std::smatch m;
    const auto log = daemon(i).log();
    static const std::regex kServing(R"(metrics: serving (http://127\.0\.0\.1:\d+/metrics))");
    if (!std::regex_search(log, m, kServing)) {
      return -1;
    }
    url = m[1];
  }
  const auto text = http_get(url).body;  // empty when the GET failed
  const std::string series =
      std::string("\nbarista_jobs_total{pool=\"") + kPool + "\",status=\"" + status + "\"} ";
  const auto at = text.find(series);
  if (at == std::string::npos) {
    return -1;
  }
  return std::stod(text.substr(at + series.size()));
}

std::string Cluster::logs() const {
  std::string out;
  for (std::size_t i = 0; i < daemons_.size(); ++i) {
    out += "--- " + consumer(i) + " (" + (daemons_[i]->running() ? "running" : "not running") +
           "):\n" + daemons_[i]->log_tail(1500) + "\n";
  }
  return out;
}

std::vector<JobResult> one_result_per_job(const std::vector<JobResult>& results, int n) {
  std::vector<JobResult> by_number(static_cast<std::size_t>(n));
  std::vector<int> seen(static_cast<std::size_t>(n), 0);
  Problems problems;
  for (const auto& r : results) {
    int number = 0;
    const auto [end, ec] = std::from_chars(r.id.data(), r.id.data() + r.id.size(), number);
    if (ec != std::errc() || end != r.id.data() + r.id.size() || number < 1 || number > n) {
      problems.add("a result for no job of the batch: " + r.line);
      continue;
    }
    const auto k = static_cast<std::size_t>(number - 1);
    if (++seen[k] > 1) {
      problems.add("a second result for job " + r.id + ": " + r.line +
                   " (first: " + by_number[k].line + ")");
      continue;
    }
    by_number[k] = r;
  }
  for (std::size_t k = 0; k < seen.size(); ++k) {
    if (seen[k] == 0) {
      problems.add("no result for job " + std::to_string(k + 1));
    }
  }
  INFO(problems.text());
  CHECK(problems.count() == 0);
  CHECK(results.size() == static_cast<std::size_t>(n));
  return by_number;
}

std::size_t occurrences(const std::string& log, const std::string& text) {
  std::size_t count = 0;
  for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + text.size())) {
    ++count;
  }
  return count;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace barista::itest::cluster
