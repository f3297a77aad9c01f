// A reload that changes a Redis pool's settings mid-batch: the daemon reconnects with the new
// ones (here a new consumer name) and no pending job is lost or repeated.
#include "tests/integration/redis_cluster/cluster_support.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <set>
#include <string>

namespace barista::itest::cluster {
namespace {

using namespace std::chrono_literals;

TEST_CASE("redis cluster: a reload renaming the consumer mid-batch loses no pending job",
          "[integration][redis][cluster][reload]") {
  if (!have_redis_server()) {
    return;
  }
  PoolOptions options;
  options.plugin_config = "{delay: 2ms}";
  Cluster c({options});
  c.start_all();
  constexpr int kJobs = 3'000;
  const auto id = c.submit("renamed", kJobs, [](int i) { return "p" + std::to_string(i); });
  c.wait_results(id, 500, 30s);
  REQUIRE_FALSE(c.pending_jobs(Cluster::consumer(0)).empty());  // mid-batch: some in hand

  c.daemon(0).set_pools(pool_yaml(options, c.server().url(), "d1-renamed"));
  c.daemon(0).signal(SIGHUP);

  const auto record = c.wait_end(id, 60s);
  INFO(c.daemon(0).log_tail());
  CHECK(record.state == "done");
  std::set<std::string> ids;
  for (const auto& r : c.results(id)) {
    CHECK(ids.insert(r.id).second);  // none repeated
    CHECK(r.status == "ok");
  }
  CHECK(ids.size() == kJobs);  // none lost
  CHECK(c.daemon(0).log().find("reload: config generation 2 applied") != std::string::npos);
  CHECK(c.pending_total() == 0);
}

}  // namespace
}  // namespace barista::itest::cluster
