// Stream entries a daemon cannot run, written straight into the stream (not by `barista
// submit`): each gets an `invalid` result and is acknowledged, and the batch ends.
#include "daemon/common/fs.hpp"
#include "tests/integration/redis_cluster/cluster_support.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <string>

namespace barista::itest::cluster {
namespace {

using namespace std::chrono_literals;

TEST_CASE("redis cluster: malformed stream entries get invalid results and are acked",
          "[integration][redis][cluster]") {
  if (!have_redis_server()) {
    return;
  }
  Cluster c({PoolOptions{}});
  c.start_all();
  const auto now = common::iso8601_utc(std::chrono::system_clock::now());
  auto& store = c.store();
  const auto id = store.begin_batch("mal", kPool, false, now);
  auto& client = store.client();
  client.command({"XADD", kStream, "*", "batch", id, "id", "good-1", "payload", "a"});
  client.command({"XADD", kStream, "*", "batch", id, "id", "no-payload"});
  client.command(
      {"XADD", kStream, "*", "batch", id, "id", "too-big", "payload", std::string(1 << 21, 'x')});
  client.command({"XADD", kStream, "*", "batch", id, "id", "good-2", "payload", "b"});
  store.end_batch(id, 4, now, std::chrono::hours(1));

  const auto record = c.wait_end(id, 30s);
  CHECK(record.state == "done");
  std::map<std::string, JobResult> by_id;
  for (const auto& r : c.results(id)) {
    CHECK(by_id.emplace(r.id, r).second);  // one result per job
  }
  REQUIRE(by_id.size() == 4);
  CHECK(by_id.at("good-1").status == "ok");
  CHECK(by_id.at("good-2").status == "ok");
  CHECK(by_id.at("no-payload").status == "invalid");
  CHECK(by_id.at("too-big").status == "invalid");
  CHECK(by_id.at("too-big").attempts == 0);
  CHECK(c.pending_total() == 0);
  CHECK(c.stream_length() == 0);
}

}  // namespace
}  // namespace barista::itest::cluster
