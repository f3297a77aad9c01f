// The consuming side of StreamStore: the group, reading new and pending entries, taking over a
// silent consumer's entries, malformed entries.

#include "daemon/redis/stream_store.hpp"
#include "tests/unit/redis/redis_test_support.hpp"

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using barista::redis::Client;
using barista::redis::Entry;
using barista::redis::StreamStore;
using barista::testing::RedisServer;
using namespace barista::redis_test;

namespace {

constexpr const char* kNow = "2026-01-02T03:04:05.000Z";

std::vector<std::pair<std::string, std::string>> jobs(int n, const std::string& prefix = "p") {
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 1; i <= n; ++i) {
    out.emplace_back(std::to_string(i), fmt::format("{}{}", prefix, i));
  }
  return out;
}

long long xlen(Client& c) { return c.command({"XLEN", "barista:test"}).integer(); }

}  // namespace

TEST_CASE("stream store: creating the group is idempotent and keeps earlier entries", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  StreamStore store(cfg, 1024, kTimeout);
  // Jobs added before any daemon made the group must not be skipped (the group starts at 0).
  const auto batch = store.begin_batch("early", "test", false, kNow);
  store.add_jobs(batch, jobs(3));
  store.ensure_group();
  store.ensure_group();
  StreamStore(cfg, 1024, kTimeout).ensure_group();

  Client admin(cfg, kTimeout);
  const auto groups = admin.command({"XINFO", "GROUPS", "barista:test"});
  CHECK(groups.size() == 1);
  CHECK(store.read_new(10, 0ms).size() == 3);
}

TEST_CASE("stream store: 1000 submitted jobs are read with their fields", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  StreamStore store(cfg, 1 << 20, kTimeout);
  store.ensure_group();
  const auto batch = store.begin_batch("big", "test", false, kNow);
  CHECK(batch == "big");
  auto submitted = jobs(1000);
  submitted[499].second = std::string("bin\0ary\n", 8);  // payloads are binary-safe
  store.add_jobs(batch, submitted);
  CHECK_FALSE(store.end_batch(batch, submitted.size(), kNow, 60s));

  std::vector<Entry> read;
  for (int round = 0; round < 10 && read.size() < submitted.size(); ++round) {
    auto page = store.read_new(300, 100ms);
    read.insert(read.end(), page.begin(), page.end());
  }
  REQUIRE(read.size() == submitted.size());
  std::set<std::string> stream_ids;
  for (std::size_t i = 0; i < read.size(); ++i) {
    INFO("entry " << i);
    CHECK(read[i].batch == "big");
    CHECK(read[i].id == submitted[i].first);
    CHECK(read[i].payload == submitted[i].second);
    CHECK(read[i].deliveries == 1);
    CHECK(read[i].malformed.empty());
    stream_ids.insert(read[i].stream_id);
  }
  CHECK(stream_ids.size() == submitted.size());
  CHECK(store.read_new(10, 0ms).empty());
  CHECK(store.pending_count() == 1000);
}

TEST_CASE("stream store: read_new waits for its block time, past the client's timeout", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  // A 100 ms socket timeout and a 400 ms BLOCK: the read must be given the longer time.
  StreamStore store(cfg, 1024, 100ms);
  store.ensure_group();
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(store.read_new(10, 400ms).empty());
  CHECK(std::chrono::steady_clock::now() - t0 >= 390ms);
  CHECK(store.client().connected());
  CHECK(store.client().timeout() == 100ms);

  // jthread: joined even when a check below throws out of the test.
  std::jthread producer([&] {
    std::this_thread::sleep_for(100ms);
    StreamStore(cfg, 1024, kTimeout).add_jobs("b", {{"1", "late"}});
  });
  const auto t1 = std::chrono::steady_clock::now();
  const auto got = store.read_new(10, 3000ms);
  producer.join();
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "late");
  CHECK(std::chrono::steady_clock::now() - t1 < 2s);
}

TEST_CASE("stream store: after a crash a consumer gets its own pending jobs back first",
          "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server, "web-1");
  Client admin(cfg, kTimeout);
  std::vector<Entry> before;
  {
    StreamStore first_life(cfg, 1024, kTimeout);
    first_life.ensure_group();
    const auto batch = first_life.begin_batch("crashy", "test", false, kNow);
    first_life.add_jobs(batch, jobs(5));
    before = first_life.read_new(4, 0ms);  // 4 taken, none recorded: then the daemon "dies"
  }
  REQUIRE(before.size() == 4);
  // One of them was deleted from the stream meanwhile (by hand): it must not come back.
  admin.command({"XDEL", "barista:test", before[3].stream_id});

  StreamStore second_life(cfg, 1024, kTimeout);
  second_life.ensure_group();
  auto first_page = second_life.read_own_pending(2);
  auto second_page = second_life.read_own_pending(2);
  CHECK(second_life.read_own_pending(2).empty());
  std::vector<Entry> again = first_page;
  again.insert(again.end(), second_page.begin(), second_page.end());
  REQUIRE(again.size() == 3);
  for (std::size_t i = 0; i < again.size(); ++i) {
    INFO("entry " << i);
    CHECK(again[i].stream_id == before[i].stream_id);
    CHECK(again[i].id == before[i].id);
    CHECK(again[i].payload == before[i].payload);
    CHECK(again[i].deliveries == 2);
  }
  // The deleted one was acknowledged away; the three others are still pending.
  CHECK(second_life.pending_count() == 3);
  // The fifth job was never delivered: read_new gets it, and only it.
  const auto fresh = second_life.read_new(10, 0ms);
  REQUIRE(fresh.size() == 1);
  CHECK(fresh[0].id == "5");
}

TEST_CASE("stream store: another consumer takes over a silent consumer's jobs", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  StreamStore a(redis_config(server, "daemon-a"), 1024, kTimeout);
  StreamStore b(redis_config(server, "daemon-b"), 1024, kTimeout);
  a.ensure_group();
  const auto batch = a.begin_batch("orphaned", "test", false, kNow);
  a.add_jobs(batch, jobs(2));
  a.end_batch(batch, 2, kNow, 60s);
  const auto held = a.read_new(10, 0ms);
  REQUIRE(held.size() == 2);

  CHECK(b.claim_idle(10).empty());  // not idle for claim_after (100 ms) yet
  std::this_thread::sleep_for(150ms);
  auto taken = b.claim_idle(1);
  const auto rest = b.claim_idle(1);  // the scan goes on where it stopped
  taken.insert(taken.end(), rest.begin(), rest.end());
  REQUIRE(taken.size() == 2);
  CHECK(taken[0].stream_id == held[0].stream_id);
  CHECK(taken[1].stream_id == held[1].stream_id);
  for (const auto& e : taken) {
    CHECK(e.deliveries == 2);
    CHECK(e.batch == batch);
  }
  Client admin(redis_config(server), kTimeout);
  const auto owners = admin.command({"XPENDING", "barista:test", "barista", "-", "+", "10"});
  REQUIRE(owners.size() == 2);
  CHECK(owners.at(0).at(1).str() == "daemon-b");
  CHECK(owners.at(1).at(1).str() == "daemon-b");

  // The one that took them over records them and the batch finishes.
  b.record(taken[0], "ok", "", R"({"id":"1"})", false, kNow, 60s);
  const auto last = b.record(taken[1], "ok", "", R"({"id":"2"})", false, kNow, 60s);
  CHECK(last.finished);
  CHECK(a.pending_count() == 0);
}

TEST_CASE("stream store: malformed entries are flagged for an invalid result", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  StreamStore store(cfg, 16, kTimeout);  // max_job_bytes 16
  store.ensure_group();
  const auto batch = store.begin_batch("bad", "test", false, kNow);
  Client admin(cfg, kTimeout);
  admin.pipeline({
      {"XADD", "barista:test", "*", "batch", batch, "id", "1"},  // no payload
      {"XADD", "barista:test", "*", "batch", batch, "id", "2", "payload", std::string(17, 'x')},
      {"XADD", "barista:test", "*", "batch", batch, "id", "3", "payload", std::string(16, 'y')},
      {"XADD", "barista:test", "*", "batch", batch, "payload", "no id"},
      {"XADD", "barista:test", "*", "id", "5", "payload", "no batch"},
  });
  store.end_batch(batch, 4, kNow, 60s);

  const auto entries = store.read_new(10, 0ms);
  REQUIRE(entries.size() == 5);
  CHECK(entries[0].malformed == R"(missing "payload")");
  CHECK(entries[1].malformed == "payload of 17 bytes exceeds max_job_bytes (16)");
  CHECK(entries[1].payload.empty());
  CHECK(entries[2].malformed.empty());  // exactly the limit is fine
  CHECK(entries[2].payload == std::string(16, 'y'));
  CHECK(entries[3].malformed == R"(entry has no "id" field)");
  CHECK(entries[3].id == entries[3].stream_id);
  CHECK(entries[4].batch.empty());
  CHECK_FALSE(entries[4].malformed.empty());

  // No batch: nothing to record it in; it is only acknowledged and deleted.
  store.discard(entries[4]);
  CHECK(xlen(admin) == 4);
  CHECK(store.pending_count() == 4);
  bool finished = false;
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& e = entries[i];
    const auto status = e.malformed.empty() ? "ok" : "invalid";
    finished = store.record(e, status, e.malformed, "{}", false, kNow, 60s).finished;
  }
  CHECK(finished);
  const auto record = store.batch(batch);
  REQUIRE(record.has_value());
  CHECK(record->counts.invalid == 3);
  CHECK(record->counts.ok == 1);
  CHECK(record->first_error_id == std::optional<std::string>("1"));
  CHECK(record->first_error == R"(missing "payload")");
  CHECK(xlen(admin) == 0);
}
