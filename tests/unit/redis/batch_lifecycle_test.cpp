// A batch's life in Redis: results recorded once, the end of the batch, cancellation, ids,
// the summary.

#include "daemon/redis/recorder.hpp"
#include "daemon/redis/stream_store.hpp"
#include "tests/unit/redis/redis_test_support.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using barista::redis::BatchRecord;
using barista::redis::CancelResult;
using barista::redis::Client;
using barista::redis::Entry;
using barista::redis::kCancelChannel;
using barista::redis::Recorder;
using barista::redis::StreamStore;
using barista::redis::Subscriber;
using barista::testing::RedisServer;
using namespace barista::redis_test;

namespace {

constexpr const char* kStarted = "2026-01-02T03:04:05.000Z";
constexpr const char* kFinished = "2026-01-02T03:04:07.500Z";

// A batch of `n` jobs (ids 1..n) submitted and ended, and its entries read by `store`.
std::pair<std::string, std::vector<Entry>> submit_and_read(StreamStore& store, int n,
                                                           bool cancel_all = false,
                                                           const std::string& name = "b") {
  store.ensure_group();
  auto batch = store.begin_batch(name, "test", cancel_all, kStarted);
  std::vector<std::pair<std::string, std::string>> jobs;
  for (int i = 1; i <= n; ++i) {
    jobs.emplace_back(std::to_string(i), "payload " + std::to_string(i));
  }
  store.add_jobs(batch, jobs);
  store.end_batch(batch, static_cast<std::uint64_t>(n), kStarted, std::chrono::seconds(600));
  auto entries = store.read_new(static_cast<std::size_t>(n), std::chrono::milliseconds(0));
  REQUIRE(entries.size() == static_cast<std::size_t>(n));
  return {batch, entries};
}

std::string line_for(const Entry& e, std::string_view status) {
  return R"({"id":")" + e.id + R"(","status":")" + std::string(status) + R"(","attempts":1})";
}

long long ttl(Client& c, const std::string& key) { return c.command({"TTL", key}).integer(); }

}  // namespace

TEST_CASE("record: a job's second result is dropped, and its entry acked and deleted", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  StreamStore store(cfg, 1024, kTimeout);
  auto [batch, entries] = submit_and_read(store, 2);
  Client admin(cfg, kTimeout);
  CHECK(admin.command({"XLEN", "barista:test"}).integer() == 2);

  // Workers record through Recorders of their own.
  Recorder worker1(cfg, kTimeout);
  Recorder worker2(cfg, kTimeout);
  const auto first = worker1.record(entries[0], "ok", "", line_for(entries[0], "ok"), false,
                                    kFinished, std::chrono::seconds(600));
  CHECK(first.first);
  CHECK_FALSE(first.finished);
  CHECK_FALSE(first.cancelled);
  CHECK(admin.command({"XLEN", "barista:test"}).integer() == 1);
  // The same job run again elsewhere (after a take-over) and failing this time: dropped.
  const auto second = worker2.record(entries[0], "failed", "boom", line_for(entries[0], "failed"),
                                     false, kFinished, std::chrono::seconds(600));
  CHECK_FALSE(second.first);
  CHECK_FALSE(second.finished);

  CHECK(store.result_lines(batch) == std::vector<std::string>{line_for(entries[0], "ok")});
  const auto record = store.batch(batch);
  REQUIRE(record.has_value());
  CHECK(record->counts.ok == 1);
  CHECK(record->counts.failed == 0);
  CHECK(record->counts.done == 1);
  CHECK_FALSE(record->first_error_id.has_value());
  // Only the job not yet recorded is still pending, and only it is left in the stream.
  const auto pending = admin.command({"XPENDING", "barista:test", "barista", "-", "+", "10"});
  REQUIRE(pending.size() == 1);
  CHECK(pending.at(0).at(0).str() == entries[1].stream_id);
  CHECK(admin.command({"XLEN", "barista:test"}).integer() == 1);
}

TEST_CASE("record: the last result ends the batch, and its keys expire", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  StreamStore store(cfg, 1024, kTimeout);
  Client admin(cfg, kTimeout);
  auto [batch, entries] = submit_and_read(store, 3);
  const auto batch_key = barista::redis::batch_key(batch);
  const auto results_key = barista::redis::results_key(batch);
  const auto lines_key = barista::redis::lines_key(batch);
  const std::chrono::seconds ttl_wanted(600);

  CHECK_FALSE(store.record(entries[0], "ok", "", "L1", false, kStarted, ttl_wanted).finished);
  CHECK_FALSE(
      store.record(entries[1], "timeout", "too slow", "L2", false, kStarted, ttl_wanted).finished);
  CHECK(ttl(admin, batch_key) == -1);  // no expiry while running
  CHECK(ttl(admin, lines_key) == -1);
  auto running = store.batch(batch);
  REQUIRE(running.has_value());
  CHECK(running->state == "running");
  CHECK_FALSE(running->ended());

  const auto last = store.record(entries[2], "ok", "", "L3", false, kFinished, ttl_wanted);
  CHECK(last.first);
  CHECK(last.finished);
  CHECK_FALSE(last.cancelled);
  const auto done = store.batch(batch);
  REQUIRE(done.has_value());
  CHECK(done->state == "done");
  CHECK(done->finished == kFinished);
  CHECK(done->total == std::optional<std::uint64_t>(3));
  CHECK(done->counts.done == 3);
  CHECK(done->counts.timeout == 1);
  CHECK(done->first_error_id == std::optional<std::string>("2"));
  CHECK(done->first_error == "too slow");
  for (const auto& key : {batch_key, results_key, lines_key}) {
    INFO(key);
    const auto left = ttl(admin, key);
    CHECK(left > 590);
    CHECK(left <= 600);
  }
  CHECK(store.result_lines(batch) == std::vector<std::string>{"L1", "L2", "L3"});
  CHECK(store.result_lines(batch, 2) == std::vector<std::string>{"L3"});

  // A late duplicate changes nothing, not even `finished`.
  const auto late =
      store.record(entries[2], "ok", "", "L3 again", false, "2030-01-01T00:00:00Z", ttl_wanted);
  CHECK_FALSE(late.first);
  CHECK_FALSE(late.finished);
  CHECK(store.batch(batch)->finished == kFinished);

  // Once the records expired, a straggler's result is dropped without re-creating them.
  admin.command({"DEL", batch_key, results_key, lines_key});
  const auto orphan = store.record(entries[0], "ok", "", "L1", false, kFinished, ttl_wanted);
  CHECK(orphan.orphan);
  CHECK_FALSE(orphan.first);
  CHECK(admin.command({"EXISTS", results_key, lines_key}).integer() == 0);
}

TEST_CASE("end_batch: a batch whose jobs all finished first ends at the end of submission",
          "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  StreamStore store(cfg, 1024, kTimeout);
  Client admin(cfg, kTimeout);
  store.ensure_group();
  const auto batch = store.begin_batch("fast", "test", false, kStarted);
  store.add_jobs(batch, {{"1", "a"}, {"2", "b"}});
  const auto entries = store.read_new(10, std::chrono::milliseconds(0));
  REQUIRE(entries.size() == 2);
  for (const auto& e : entries) {
    // Without a total, the batch cannot end, however many results come in.
    CHECK_FALSE(store.record(e, "ok", "", "L", false, kStarted, std::chrono::seconds(60)).finished);
  }
  auto before = store.batch(batch);
  REQUIRE(before.has_value());
  CHECK(before->state == "running");
  CHECK_FALSE(before->total.has_value());
  CHECK_FALSE(before->ended());

  CHECK(store.end_batch(batch, 2, kFinished, std::chrono::seconds(60)));
  const auto after = store.batch(batch);
  REQUIRE(after.has_value());
  CHECK(after->state == "done");
  CHECK(after->finished == kFinished);
  CHECK(ttl(admin, barista::redis::batch_key(batch)) > 0);
  CHECK(ttl(admin, barista::redis::lines_key(batch)) > 0);

  // An empty batch ends at once.
  const auto empty = store.begin_batch("empty", "test", false, kStarted);
  CHECK(store.end_batch(empty, 0, kFinished, std::chrono::seconds(60)));
  CHECK(store.batch(empty)->state == "done");
  CHECK_THROWS_AS(store.end_batch("never-begun", 1, kFinished, std::chrono::seconds(60)),
                  barista::redis::RedisError);
}

TEST_CASE("record: a failure under cancel_all cancels the batch everywhere", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  Subscriber sub(cfg, kTimeout, std::string(kCancelChannel));
  StreamStore store(cfg, 1024, kTimeout);

  SECTION("the batch's policy (the submitting pool's) cancels it") {
    auto [batch, entries] = submit_and_read(store, 3, /*cancel_all=*/true);
    CHECK_FALSE(store.batch_cancelled(batch));
    CHECK_FALSE(store.record(entries[0], "ok", "", "L1", false, kStarted, std::chrono::seconds(60))
                    .cancelled);
    // This daemon's own policy says continue: the batch's cancel_all still applies.
    const auto failed = store.record(entries[1], "failed", "bad input", "L2", false, kStarted,
                                     std::chrono::seconds(60));
    CHECK(failed.first);
    CHECK(failed.cancelled);
    CHECK_FALSE(failed.finished);
    CHECK(store.batch_cancelled(batch));
    CHECK(sub.next_message(std::chrono::seconds(2)) == std::optional<std::string>(batch));

    // The rest get `cancelled`; the last one ends the batch, which stays cancelled.
    const auto last = store.record(entries[2], "cancelled", "cancelled", "L3", false, kFinished,
                                   std::chrono::seconds(60));
    CHECK(last.finished);
    CHECK(last.cancelled);
    const auto record = store.batch(batch);
    REQUIRE(record.has_value());
    CHECK(record->state == "cancelled");
    CHECK(record->finished == kFinished);
    CHECK(record->first_error_id == std::optional<std::string>("2"));
    CHECK(record->first_error == "bad input");
    CHECK(record->counts.cancelled == 1);
    // Published once only.
    CHECK_FALSE(sub.next_message(std::chrono::milliseconds(100)).has_value());
  }
  SECTION("the recording daemon's policy cancels it too") {
    auto [batch, entries] = submit_and_read(store, 2, /*cancel_all=*/false);
    CHECK(
        store.record(entries[0], "timeout", "slow", "L1", true, kStarted, std::chrono::seconds(60))
            .cancelled);
    CHECK(sub.next_message(std::chrono::seconds(2)) == std::optional<std::string>(batch));
  }
  SECTION("without cancel_all a failure is only counted") {
    auto [batch, entries] = submit_and_read(store, 2, /*cancel_all=*/false);
    const auto failed =
        store.record(entries[0], "invalid", "bad", "L1", false, kStarted, std::chrono::seconds(60));
    CHECK_FALSE(failed.cancelled);
    CHECK(store.batch(batch)->state == "running");
    CHECK(store.batch(batch)->first_error == "bad");
    CHECK_FALSE(sub.next_message(std::chrono::milliseconds(200)).has_value());
  }
}

TEST_CASE("cancel: publishes the batch id once, only for a running batch", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  Subscriber sub(cfg, kTimeout, std::string(kCancelChannel));
  StreamStore store(cfg, 1024, kTimeout);
  auto [batch, entries] = submit_and_read(store, 1);

  CHECK(store.cancel(batch) == CancelResult::kCancelled);
  CHECK(sub.next_message(std::chrono::seconds(2)) == std::optional<std::string>(batch));
  CHECK(store.batch_cancelled(batch));
  CHECK(store.cancel(batch) == CancelResult::kNotRunning);
  CHECK(store.cancel("no-such-batch") == CancelResult::kUnknown);
  CHECK_FALSE(sub.next_message(std::chrono::milliseconds(100)).has_value());

  // A job that was running keeps its ok; the batch ends cancelled.
  const auto r =
      store.record(entries[0], "ok", "", "L", false, kFinished, std::chrono::seconds(60));
  CHECK(r.finished);
  CHECK(r.cancelled);
  CHECK(store.batch(batch)->state == "cancelled");
  CHECK(store.batch(batch)->counts.ok == 1);
  // An ended batch cannot be cancelled.
  const auto other = submit_and_read(store, 1, false, "other");
  store.record(other.second[0], "ok", "", "L", false, kFinished, std::chrono::seconds(60));
  CHECK(store.cancel(other.first) == CancelResult::kNotRunning);
}

TEST_CASE("begin_batch: a taken id gets -2, -3 appended", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  StreamStore a(cfg, 1024, kTimeout);
  StreamStore b(redis_config(server, "daemon-b"), 1024, kTimeout);
  CHECK(a.begin_batch("jobs", "scrape", true, kStarted) == "jobs");
  CHECK(b.begin_batch("jobs", "scrape", false, kStarted) == "jobs-2");
  CHECK(a.begin_batch("jobs", "scrape", false, kStarted) == "jobs-3");
  CHECK(a.begin_batch("jobs-2", "scrape", false, kStarted) == "jobs-2-2");

  const auto first = a.batch("jobs");
  REQUIRE(first.has_value());
  CHECK(first->pool == "scrape");
  CHECK(first->state == "running");
  CHECK(first->started == kStarted);
  CHECK(first->cancel_all);
  CHECK_FALSE(first->total.has_value());
  CHECK_FALSE(a.batch("jobs-2")->cancel_all);
  CHECK_FALSE(a.batch("jobs-4").has_value());
}

TEST_CASE("summary_json: the documented summary.json of a Redis batch", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  StreamStore store(cfg, 1024, kTimeout);
  auto [batch, entries] = submit_and_read(store, 3, false, "sum\"mary");
  CHECK(barista::redis::summary_json(*store.batch(batch)) ==
        R"({"batch":"sum\"mary","pool":"test","state":"running","jobs":0,"ok":0,"failed":0,)"
        R"("timeout":0,"cancelled":0,"invalid":0,"first_error":null,)"
        R"("started":"2026-01-02T03:04:05.000Z","finished":null,"seconds":null})"
        "\n");
  store.record(entries[0], "ok", "", "L", false, kStarted, std::chrono::seconds(60));
  store.record(entries[1], "failed", "exit \"2\"", "L", false, kStarted, std::chrono::seconds(60));
  store.record(entries[2], "ok", "", "L", false, kFinished, std::chrono::seconds(60));
  CHECK(barista::redis::summary_json(*store.batch(batch)) ==
        R"({"batch":"sum\"mary","pool":"test","state":"done","jobs":3,"ok":2,"failed":1,)"
        R"("timeout":0,"cancelled":0,"invalid":0,"first_error":{"id":"2","error":"exit \"2\""},)"
        R"("started":"2026-01-02T03:04:05.000Z","finished":"2026-01-02T03:04:07.500Z",)"
        R"("seconds":2.500})"
        "\n");
}

TEST_CASE("record: the script is loaded again after the server forgot it", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  StreamStore store(cfg, 1024, kTimeout);
  auto [batch, entries] = submit_and_read(store, 2);
  store.record(entries[0], "ok", "", "L1", false, kStarted, std::chrono::seconds(60));
  Client(cfg, kTimeout).command({"SCRIPT", "FLUSH"});
  const auto r =
      store.record(entries[1], "ok", "", "L2", false, kFinished, std::chrono::seconds(60));
  CHECK(r.first);
  CHECK(r.finished);
  CHECK(store.result_lines(batch) == std::vector<std::string>{"L1", "L2"});
  CHECK_THROWS_AS(
      store.record(entries[1], "great", "", "L", false, kFinished, std::chrono::seconds(60)),
      std::invalid_argument);
}
