// The Prometheus endpoint: what a scrape of http://HOST:PORT/metrics shows for the pools' own
// counters, the reloads and the config generation, and how a bad `metrics:` address is refused.

#include "daemon/runtime/metrics.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace barista::runtime {
namespace {

// One job's duration counted the way a worker hands it over.
void observe(batch::JobCounters& c, double seconds) {
  batch::JobTally tally;
  tally.observe_duration(seconds);
  c.add(tally);
}

using Catch::Matchers::Contains;
using Catch::Matchers::VectorContains;

struct Response {
  int status = 0;
  std::string head;
  std::string body;
  std::vector<std::string> lines;  // of the body
};

/// A loopback socket with a 5 s timeout both ways, so a broken server fails the test, not hangs.
int loopback_socket() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  timeval tv{};
  tv.tv_sec = 5;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

/// A minimal HTTP/1.0 GET (the server closes the connection after the answer). Throws
/// std::runtime_error when nothing listens.
Response http_get(std::uint16_t port, const std::string& path = "/metrics") {
  const int fd = loopback_socket();
  const auto addr = loopback(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("connect: " + why);
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  std::size_t sent = 0;
  while (sent < request.size()) {
    const auto n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    REQUIRE(n > 0);
    sent += static_cast<std::size_t>(n);
  }
  std::string raw;
  char buf[4096];
  for (;;) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    REQUIRE(n >= 0);
    if (n == 0) {
      break;
    }
    raw.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  Response r;
  const auto split = raw.find("\r\n\r\n");
  REQUIRE(split != std::string::npos);
  r.head = raw.substr(0, split);
  r.body = raw.substr(split + 4);
  REQUIRE(r.head.rfind("HTTP/1.", 0) == 0);
  r.status = std::stoi(r.head.substr(9, 3));
  std::istringstream in(r.body);
  for (std::string line; std::getline(in, line);) {
    r.lines.push_back(line);
  }
  return r;
}

bool mentions(const Response& r, const std::string& text) {
  return r.body.find(text) != std::string::npos;
}

/// Stands in for the supervisor's pool map: pools the test adds, changes and removes.
class FakePools {
 public:
  batch::JobCounters& add(const std::string& name, pool::PoolStatus status = {}) {
    std::lock_guard lock(mutex_);
    auto& entry = pools_[name];
    entry.status = status;
    entry.counters = std::make_shared<batch::JobCounters>();
    return *entry.counters;
  }
  void remove(const std::string& name) {
    std::lock_guard lock(mutex_);
    pools_.erase(name);
  }
  Metrics::PoolSource source() {
    return [this] {
      std::lock_guard lock(mutex_);
      std::vector<Metrics::PoolView> views;
      for (const auto& [name, entry] : pools_) {
        views.push_back({name, entry.status, entry.counters.get(), entry.counters});
      }
      return views;
    };
  }

 private:
  struct Entry {
    pool::PoolStatus status;
    std::shared_ptr<batch::JobCounters> counters;
  };
  std::mutex mutex_;
  std::map<std::string, Entry> pools_;
};

TEST_CASE("metrics: a scrape shows each pool's jobs, workers, queue, durations and batches",
          "[metrics]") {
  FakePools pools;
  pool::PoolStatus status;
  status.workers = 4;
  status.busy = 3;
  status.queued = 17;
  status.abandoned = 2;
  status.storage_error = "cannot write results: Input/output error";
  status.storage_errors = 7;
  auto& c = pools.add("scrape", status);
  c.jobs[0] = 5;  // ok
  c.jobs[1] = 2;  // failed
  c.jobs[2] = 1;  // timeout
  c.jobs[4] = 3;  // invalid
  // Binary fractions: their microseconds are exact, so _sum is known to the digit.
  observe(c, 0.000244140625);  // le 0.0005, 244 us
  observe(c, 0.000244140625);
  observe(c, 0.00390625);  // le 0.005, 3906 us
  observe(c, 0.75);        // le 1
  observe(c, 20.0);        // beyond 10: +Inf only
  c.batches_done = 6;
  c.batches_cancelled = 1;

  Metrics metrics("127.0.0.1:0", pools.source());
  REQUIRE(metrics.port() != 0);
  CHECK(metrics.address() == "127.0.0.1:" + std::to_string(metrics.port()));
  const auto r = http_get(metrics.port());
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK_THAT(r.head, Contains("Content-Type: text/plain"));

  SECTION("jobs by final status, every status present") {
    CHECK_THAT(r.lines, VectorContains(std::string("# TYPE barista_jobs_total counter")));
    for (const auto* line : {R"(barista_jobs_total{pool="scrape",status="ok"} 5)",
                             R"(barista_jobs_total{pool="scrape",status="failed"} 2)",
                             R"(barista_jobs_total{pool="scrape",status="timeout"} 1)",
                             R"(barista_jobs_total{pool="scrape",status="cancelled"} 0)",
                             R"(barista_jobs_total{pool="scrape",status="invalid"} 3)"}) {
      CHECK_THAT(r.lines, VectorContains(std::string(line)));
    }
  }
  SECTION("workers, busy workers, queue depth and abandoned workers") {
    for (const auto* line :
         {"# TYPE barista_workers gauge", R"(barista_workers{pool="scrape"} 4)",
          "# TYPE barista_workers_busy gauge", R"(barista_workers_busy{pool="scrape"} 3)",
          "# TYPE barista_queue_depth gauge", R"(barista_queue_depth{pool="scrape"} 17)",
          "# TYPE barista_workers_abandoned_total counter",
          R"(barista_workers_abandoned_total{pool="scrape"} 2)"}) {
      CHECK_THAT(r.lines, VectorContains(std::string(line)));
    }
  }
  SECTION("a storage outage: failing, and the failed calls") {
    for (const auto* line :
         {"# TYPE barista_storage_failing gauge", R"(barista_storage_failing{pool="scrape"} 1)",
          "# TYPE barista_storage_errors_total counter",
          R"(barista_storage_errors_total{pool="scrape"} 7)"}) {
      CHECK_THAT(r.lines, VectorContains(std::string(line)));
    }
  }
  SECTION("job durations as a cumulative histogram in seconds") {
    CHECK_THAT(r.lines,
               VectorContains(std::string("# TYPE barista_job_duration_seconds histogram")));
    const std::vector<std::pair<std::string, int>> buckets = {
        {"0.0005", 2}, {"0.001", 2}, {"0.0025", 2}, {"0.005", 3}, {"0.01", 3},
        {"0.025", 3},  {"0.05", 3},  {"0.1", 3},    {"0.25", 3},  {"0.5", 3},
        {"1", 4},      {"2.5", 4},   {"5", 4},      {"10", 4},    {"+Inf", 5}};
    REQUIRE(buckets.size() == batch::JobCounters::kBuckets.size() + 1);
    for (const auto& [le, count] : buckets) {
      CHECK_THAT(r.lines,
                 VectorContains(R"(barista_job_duration_seconds_bucket{pool="scrape",le=")" + le +
                                "\"} " + std::to_string(count)));
    }
    CHECK_THAT(r.lines, VectorContains(
                            std::string(R"(barista_job_duration_seconds_count{pool="scrape"} 5)")));
    // 2 x 244 + 3906 + 750000 + 20000000 microseconds.
    CHECK_THAT(r.lines, VectorContains(std::string(
                            R"(barista_job_duration_seconds_sum{pool="scrape"} 20.754394)")));
  }
  SECTION("batches by how they ended") {
    CHECK_THAT(r.lines, VectorContains(std::string("# TYPE barista_batches_total counter")));
    CHECK_THAT(r.lines, VectorContains(
                            std::string(R"(barista_batches_total{pool="scrape",state="done"} 6)")));
    CHECK_THAT(
        r.lines,
        VectorContains(std::string(R"(barista_batches_total{pool="scrape",state="cancelled"} 1)")));
  }
  SECTION("numbers move between scrapes without anything registered per job") {
    c.jobs[0] += 10;
    observe(c, 0.001);  // on the bound: le 0.001
    const auto again = http_get(metrics.port());
    INFO(again.body);
    CHECK_THAT(again.lines,
               VectorContains(std::string(R"(barista_jobs_total{pool="scrape",status="ok"} 15)")));
    CHECK_THAT(again.lines,
               VectorContains(std::string(
                   R"(barista_job_duration_seconds_bucket{pool="scrape",le="0.001"} 3)")));
    CHECK_THAT(again.lines,
               VectorContains(std::string(
                   R"(barista_job_duration_seconds_bucket{pool="scrape",le="+Inf"} 6)")));
  }
}

TEST_CASE("metrics: reloads and the config generation", "[metrics]") {
  FakePools pools;
  Metrics metrics("127.0.0.1:0", pools.source(), 1);

  auto r = http_get(metrics.port());
  {
    INFO(r.body);
    CHECK_THAT(r.lines, VectorContains(std::string("# TYPE barista_reloads_total counter")));
    CHECK_THAT(r.lines, VectorContains(std::string(R"(barista_reloads_total{result="ok"} 0)")));
    CHECK_THAT(r.lines,
               VectorContains(std::string(R"(barista_reloads_total{result="rejected"} 0)")));
    CHECK_THAT(r.lines, VectorContains(std::string("# TYPE barista_config_generation gauge")));
    CHECK_THAT(r.lines, VectorContains(std::string("barista_config_generation 1")));
    // No pool, no per-pool family at all (not even its # TYPE line).
    CHECK_FALSE(mentions(r, "barista_jobs_total"));
    CHECK_FALSE(mentions(r, "barista_workers"));
  }

  metrics.reload_applied(2);
  metrics.reload_rejected();
  metrics.reload_rejected();
  metrics.reload_applied(3);
  r = http_get(metrics.port());
  INFO(r.body);
  CHECK_THAT(r.lines, VectorContains(std::string(R"(barista_reloads_total{result="ok"} 2)")));
  CHECK_THAT(r.lines, VectorContains(std::string(R"(barista_reloads_total{result="rejected"} 2)")));
  CHECK_THAT(r.lines, VectorContains(std::string("barista_config_generation 3")));
}

TEST_CASE("metrics: pools added and removed by a reload appear and vanish at the next scrape",
          "[metrics]") {
  FakePools pools;
  pools.add("alpha").jobs[0] = 1;
  Metrics metrics("127.0.0.1:0", pools.source());

  auto r = http_get(metrics.port());
  CHECK(mentions(r, R"(barista_jobs_total{pool="alpha",status="ok"} 1)"));
  CHECK_FALSE(mentions(r, R"(pool="beta")"));

  pool::PoolStatus beta_status;
  beta_status.workers = 7;
  pools.add("beta", beta_status).jobs[1] = 4;
  r = http_get(metrics.port());
  CHECK(mentions(r, R"(barista_jobs_total{pool="alpha",status="ok"} 1)"));
  CHECK(mentions(r, R"(barista_jobs_total{pool="beta",status="failed"} 4)"));
  CHECK(mentions(r, R"(barista_workers{pool="beta"} 7)"));
  // One family, its samples together: one # TYPE line however many pools.
  std::size_t types = 0;
  for (const auto& line : r.lines) {
    types += line == "# TYPE barista_jobs_total counter" ? 1 : 0;
  }
  CHECK(types == 1);

  pools.remove("alpha");
  r = http_get(metrics.port());
  INFO(r.body);
  CHECK_FALSE(mentions(r, R"(pool="alpha")"));
  CHECK(mentions(r, R"(barista_jobs_total{pool="beta",status="failed"} 4)"));

  // A pool that comes back is a new pool: its counters start again (a counter reset).
  pools.add("alpha");
  r = http_get(metrics.port());
  CHECK(mentions(r, R"(barista_jobs_total{pool="alpha",status="ok"} 0)"));
}

TEST_CASE("metrics: a pool source that throws still leaves the daemon-wide metrics", "[metrics]") {
  Metrics metrics("127.0.0.1:0",
                  []() -> std::vector<Metrics::PoolView> { throw std::runtime_error("boom"); });
  const auto r = http_get(metrics.port());
  INFO(r.body);
  CHECK(r.status == 200);
  CHECK_THAT(r.lines, VectorContains(std::string("barista_config_generation 1")));
  CHECK_FALSE(mentions(r, "barista_jobs_total"));
}

TEST_CASE("metrics: a host name is resolved; listen() moves the endpoint, keeping the counts",
          "[metrics]") {
  FakePools pools;
  Metrics metrics("localhost:0", pools.source());
  CHECK(metrics.address() == "127.0.0.1:" + std::to_string(metrics.port()));
  metrics.reload_applied(2);
  const auto old_port = metrics.port();

  metrics.listen("127.0.0.1:0");
  REQUIRE(metrics.port() != old_port);
  const auto r = http_get(metrics.port());
  INFO(r.body);
  CHECK_THAT(r.lines, VectorContains(std::string(R"(barista_reloads_total{result="ok"} 1)")));
  CHECK_THAT(r.lines, VectorContains(std::string("barista_config_generation 2")));
  CHECK_THROWS_WITH(http_get(old_port), Contains("Connection refused"));

  // The same address again (a reload that left `metrics:` alone) keeps the server as it is.
  const auto port = metrics.port();
  metrics.listen("127.0.0.1:0");
  CHECK(metrics.port() == port);
}

TEST_CASE("metrics: stopping the endpoint is prompt, even right after a scrape", "[metrics]") {
  FakePools pools;
  auto metrics = std::make_unique<Metrics>("0.0.0.0:0", pools.source());
  const auto port = metrics->port();
  CHECK(http_get(port).status == 200);
  const auto start = std::chrono::steady_clock::now();
  metrics.reset();
  // civetweb alone takes up to 2 s (its accept loop's poll step) to notice a stop.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1500));
  CHECK_THROWS_WITH(http_get(port), Contains("Connection refused"));
}

TEST_CASE("metrics: a bad or busy address is refused with the reason", "[metrics]") {
  FakePools pools;
  const auto make = [&](const std::string& address) { Metrics m(address, pools.source()); };

  CHECK_THROWS_WITH(make("9464"), Contains("metrics: cannot listen on 9464: expected HOST:PORT"));
  CHECK_THROWS_WITH(make("127.0.0.1:http"), Contains("'http' is not a port"));
  CHECK_THROWS_WITH(make("127.0.0.1:70000"), Contains("'70000' is not a port"));
  CHECK_THROWS_WITH(make("127.0.0.1:"), Contains("'' is not a port"));
  CHECK_THROWS_WITH(make("::1:9464"), Contains("[::1]:9464"));
  // TEST-NET-1: never an address of this machine.
  CHECK_THROWS_WITH(make("192.0.2.1:0"),
                    Contains("192.0.2.1:0") && Contains("Cannot assign requested address"));

  SECTION("a port another server listens on") {
    Metrics first("127.0.0.1:0", pools.source());
    const auto taken = "127.0.0.1:" + std::to_string(first.port());
    CHECK_THROWS_WITH(make(taken), Contains("metrics: cannot listen on " + taken) &&
                                       Contains("Address already in use"));
    // A failed move keeps the endpoint where it was.
    Metrics second("127.0.0.1:0", pools.source());
    const auto port = second.port();
    CHECK_THROWS_WITH(second.listen(taken), Contains("Address already in use"));
    CHECK(second.port() == port);
    CHECK(http_get(port).status == 200);
  }
}

}  // namespace
}  // namespace barista::runtime
