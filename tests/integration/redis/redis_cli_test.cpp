// The control socket and the CLI for pools shared through Redis (docs/cli.md#redis-pools): submit
// stores the batch in the pool's stream and its record; results, --summary, cancel and wait read
// Redis; status shows the link; a Redis that is down or fails midway gives a clear error and leaves
// nothing half-stored.

#include "tests/integration/redis/redis_pool_support.hpp"

#include <catch2/catch.hpp>

#include <simdjson.h>

#include <map>
#include <string>
#include <vector>

namespace barista::itest::redis_pools {
namespace {

using Strings = std::vector<std::string>;

// 30 s per job: what a test submits stays in the stream while it looks.
constexpr const char* kSlow = "    config:\n      ms: 30s\n";

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

std::string field(const std::string& json, const char* key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(json).get(doc) == simdjson::SUCCESS);
  simdjson::dom::element value;
  REQUIRE(doc[key].get(value) == simdjson::SUCCESS);
  return simdjson::minify(value);
}

TEST_CASE("redis pool: submit stores each job in the stream and the total in the batch record",
          "[integration][redis]") {
  if (!have_redis_server()) {
    return;
  }
  SharedPool s("fx_slow", 1, std::string("    max_job_bytes: 64\n") + kSlow);
  s.d.start();
  // A blank line is no job; a line over max_job_bytes is an `invalid` job.
  const auto r = s.submit("jobs.txt", "a\n\nb\n" + std::string(100, 'x') + "\nc\n");
  INFO(r.err << s.d.log_tail());
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "jobs\n");
  CHECK(s.stream_entries() == Strings{"jobs|1|a", "jobs|3|b", "jobs|5|c"});
  CHECK(s.record("jobs", "pool") == "shared");
  CHECK(s.record("jobs", "state") == "running");
  CHECK(s.record("jobs", "total") == "4");
  CHECK(s.record("jobs", "invalid") == "1");
  // The invalid line has its result at once, as the spool's feeder gives it.
  const auto results = s.barista({"results", "jobs"});
  CHECK(results.exit_code == 0);
  const auto lines = lines_of(results.out);
  REQUIRE(lines.size() == 1);
  const auto invalid = parse_result_line(lines[0]);
  CHECK(invalid.id == "4");
  CHECK(invalid.status == "invalid");
  CHECK(invalid.attempts == 0);
  CHECK(invalid.error == "line of 100 bytes exceeds max_job_bytes (64)");
  CHECK(s.leftover_bodies().empty());

  // The id is taken in Redis: the same name gets the next one, as in the spool.
  const auto again = s.submit("jobs.txt", "d\n");
  CHECK(again.out == "jobs-2\n");
  CHECK(s.record("jobs-2", "total") == "1");
  CHECK(s.stream_entries().back() == "jobs-2|1|d");
}

TEST_CASE("redis pool: a batch of many round trips keeps every job and every invalid line",
          "[integration][redis]") {
  if (!have_redis_server()) {
    return;
  }
  SharedPool s("fx_slow", 1, std::string("    max_job_bytes: 8\n") + kSlow);
  s.d.start();
  // 2,500 jobs and 2,500 lines over max_job_bytes, interleaved: several groups of each.
  std::string content;
  for (int i = 1; i <= 5000; ++i) {
    content += i % 2 == 0 ? "too long for the pool\n" : "ok-" + std::to_string(i) + "\n";
  }
  const auto r = s.submit("big.txt", content);
  INFO(r.err << s.d.log_tail());
  REQUIRE(r.exit_code == 0);
  CHECK(s.record("big", "total") == "5000");
  CHECK(s.record("big", "invalid") == "2500");
  const auto entries = s.stream_entries();
  REQUIRE(entries.size() == 2500);
  CHECK(entries.front() == "big|1|ok-1");
  CHECK(entries.back() == "big|4999|ok-4999");
  const auto ids = by_id(s.results("big"));  // one result per id
  REQUIRE(ids.size() == 2500);
  CHECK(ids.at("2").status == "invalid");
  CHECK(ids.at("5000").error == "line of 21 bytes exceeds max_job_bytes (8)");
}

TEST_CASE("redis pool: a JSONL batch follows the spool's rules; a repeated id is dropped",
          "[integration][redis]") {
  if (!have_redis_server()) {
    return;
  }
  SharedPool s("fx_slow", 1, kSlow);
  s.d.start();
  const auto r = s.submit("mixed.jsonl", R"({"id":"a","payload":"first"})"
                                         "\n"
                                         R"({"id":7,"payload":{"k":[1,2]}})"
                                         "\n"
                                         "not json\n"
                                         R"({"payload":"no id"})"
                                         "\n"
                                         R"({"id":"a","payload":"again"})"
                                         "\n"
                                         R"({"id":"x"})"
                                         "\n"
                                         R"({"id":"4","payload":"clash with line 4"})"
                                         "\n");
  INFO(r.err << s.d.log_tail());
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "mixed\n");
  CHECK(s.stream_entries() == Strings{"mixed|a|first", R"(mixed|7|{"k":[1,2]})", "mixed|4|no id"});
  // Redis keeps one result per job id: the lines reusing "a" and "4" would never get one, so
  // they are not jobs of the batch (and not counted), and the daemon says so.
  CHECK(s.record("mixed", "total") == "5");
  CHECK(s.d.log().find("batch 'mixed': 2 lines reused a job id already in the batch and were "
                       "dropped (not run, no result): 'a', '4'") != std::string::npos);
  // ... and so does the CLI, to the user who submitted it.
  CHECK(r.err.find("barista: warning: ") != std::string::npos);
  CHECK(r.err.find("'a', '4'") != std::string::npos);
  std::map<std::string, JobResult> results;
  for (const auto& line : lines_of(s.barista({"results", "mixed"}).out)) {
    const auto res = parse_result_line(line);
    results.emplace(res.id, res);
  }
  REQUIRE(results.size() == 2);
  CHECK(results.at("3").status == "invalid");
  CHECK(results.at("3").error->starts_with("malformed JSON"));
  CHECK(results.at("x").error == R"(missing "payload")");
}

TEST_CASE("redis pool: results, --summary and cancel by ID and POOL/ID", "[integration][redis]") {
  if (!have_redis_server()) {
    return;
  }
  SharedPool s("fx_slow", 1, kSlow);
  s.d.start();
  REQUIRE(s.submit("work.txt", "one\ntwo\nthree\n").out == "work\n");

  const auto summary = s.barista({"results", "work", "--summary"});
  INFO(summary.err << s.d.log_tail());
  CHECK(summary.exit_code == 0);
  CHECK(summary.out.starts_with(
      R"({"batch":"work","pool":"shared","state":"running","jobs":0,"ok":0,"failed":0,)"
      R"("timeout":0,"cancelled":0,"invalid":0,"first_error":null,"started":")"));
  CHECK(summary.out.ends_with(R"(","finished":null,"seconds":null})"
                              "\n"));
  const auto none = s.barista({"results", "shared/work"});
  CHECK(none.exit_code == 0);
  CHECK(none.out.empty());

  // Unknown, as for spool batches: exit 1 with the same words.
  for (const auto& ref : Strings{"nope", "shared/nope", "local/work", "shared/"}) {
    const auto unknown = s.barista({"results", ref});
    CHECK(unknown.exit_code == 1);
    CHECK(unknown.err == "barista: unknown batch '" + ref + "'\n");
  }
  CHECK(s.barista({"cancel", "nope"}).exit_code == 1);

  const auto cancel = s.barista({"cancel", "work"});
  CHECK(cancel.exit_code == 0);
  CHECK(cancel.out == "batch 'work' cancelled\n");
  CHECK(s.record("work", "state") == "cancelled");
  // The daemons give every job without a result `cancelled`; then the batch has ended.
  REQUIRE(s.d.wait_until([&] { return !s.record("work", "finished").empty(); }, seconds(15)));
  const auto ended = s.barista({"results", "shared/work", "--summary"});
  CHECK(field(ended.out, "state") == R"("cancelled")");
  CHECK(field(ended.out, "jobs") == "3");
  CHECK(lines_of(s.barista({"results", "work"}).out).size() == 3);
  const auto late = s.barista({"cancel", "shared/work"});
  CHECK(late.exit_code == 1);
  CHECK(late.err == "barista: batch 'shared/work' has already finished\n");
}

TEST_CASE("redis pool: an id in a spool pool and in Redis must be named POOL/ID",
          "[integration][redis]") {
  if (!have_redis_server()) {
    return;
  }
  SharedPool s("fx_slow", 1, kSlow);
  s.d.start();
  write_file(s.tmp.path() / "same.txt", "spool\n");
  REQUIRE(s.barista({"submit", "local", (s.tmp.path() / "same.txt").string()}).exit_code == 0);
  s.d.wait_batch("local", "same");
  REQUIRE(s.submit("same.txt", "redis\n").out == "same\n");

  const auto both = s.barista({"results", "same"});
  CHECK(both.exit_code == 1);
  CHECK(both.err ==
        "barista: batch 'same' is in more than one pool (local, shared): name it as POOL/same\n");
  CHECK(s.barista({"cancel", "same"}).exit_code == 1);
  const auto local = s.barista({"results", "local/same"});
  CHECK(local.exit_code == 0);
  CHECK(parse_result_line(lines_of(local.out).at(0)).output == "spool");
  CHECK(s.barista({"cancel", "shared/same"}).exit_code == 0);
  CHECK(s.record("same", "state") == "cancelled");
}

TEST_CASE("redis pool: status shows redis connected, unavailable while the server is down",
          "[integration][redis]") {
  if (!have_redis_server()) {
    return;
  }
  SharedPool s("echo");
  s.d.start();
  const auto json = s.barista({"status", "--json"});
  INFO(json.err << s.d.log_tail());
  CHECK(json.exit_code == 0);
  // The spool pool's object keeps exactly the documented keys.
  CHECK(json.out.starts_with(
      R"({"pools":[{"name":"local","plugin":"echo","workers":1,"busy":0,"queued":0,)"
      R"("on_error":"continue"},{"name":"shared","plugin":"echo","workers":2,)"));
  CHECK(json.out.find(R"("on_error":"continue","redis":"connected","pending":0})") !=
        std::string::npos);
  const auto table = s.barista({"status"});
  CHECK(
      table.out.starts_with("POOL    PLUGIN  WORKERS  BUSY  QUEUED  ON_ERROR  SHARED\n"
                            "local   echo          1     0       0  continue\n"
                            "shared  echo          2     0       0  continue  redis: connected\n"));

  s.server.kill9();
  std::string shown;
  CHECK(s.d.wait_until(
      [&] {
        shown = s.barista({"status"}).out;
        return shown.find("continue  redis: unavailable\n") != std::string::npos;
      },
      seconds(10)));
  INFO(shown);
  CHECK(s.barista({"status", "--json"}).out.find(R"("redis":"unavailable"})") != std::string::npos);
  // The spool pool is untouched.
  CHECK(shown.find("local   echo          1     0       0  continue\n") != std::string::npos);

  s.server.restart();
  CHECK(s.d.wait_until(
      [&] { return s.barista({"status"}).out.find("redis: connected") != std::string::npos; },
      seconds(30)));
}

TEST_CASE("redis pool: submit while Redis is down is refused and stores nothing",
          "[integration][redis]") {
  if (!have_redis_server()) {
    return;
  }
  SharedPool s("echo");
  s.d.start();
  s.server.stop();
  const auto r = s.submit("jobs.txt", "a\nb\n");
  CHECK(r.exit_code == 3);
  CHECK(r.out.empty());
  const auto expected =
      "barista: pool 'shared': redis at 127.0.0.1:" + std::to_string(s.server.port()) +
      " unavailable: cannot connect: ";
  CHECK(r.err.starts_with(expected));
  CHECK(s.leftover_bodies().empty());
  // Nor can a batch id be looked up there: refused, naming the cause, not "unknown".
  const auto results = s.barista({"results", "jobs"});
  CHECK(results.exit_code == 3);
  CHECK(results.err.find("redis at 127.0.0.1:" + std::to_string(s.server.port()) +
                         " unavailable") != std::string::npos);

  s.server.restart();
  CHECK_FALSE(s.exists(redis::batch_key("jobs")));
  CHECK(s.stream_entries().empty());
  // Nothing of the refused batch took its id.
  const auto again = s.submit("jobs.txt", "a\nb\n");
  CHECK(again.exit_code == 0);
  CHECK(again.out == "jobs\n");
}

TEST_CASE("redis pool: a submission Redis refuses midway is cancelled and ended, not left half",
          "[integration][redis]") {
  if (!have_redis_server()) {
    return;
  }
  SharedPool s("echo", 1, "    max_job_bytes: 16\n");
  s.d.start();
  // The stream's key holds a string: every XADD fails, after the batch record was made and
  // the oversize first line got its `invalid` result.
  s.redis().command({"SET", "barista:shared", "not a stream"});
  const auto r = s.submit("broken.txt", std::string(40, 'x') + "\nb\nc\n");
  INFO(s.d.log_tail());
  CHECK(r.exit_code == 3);
  CHECK(r.out.empty());
  CHECK(r.err.starts_with("barista: pool 'shared': redis at 127.0.0.1:" +
                          std::to_string(s.server.port()) + " refused a command: WRONGTYPE"));
  CHECK(r.err.ends_with("; batch 'broken' is cancelled (1 of its jobs had been stored)\n"));
  CHECK(count_of(s.d.log(), "submitted batch 'broken.txt' not stored") == 1);
  CHECK(s.leftover_bodies().empty());

  // The record is consistent: its total is what was stored, and it has ended.
  CHECK(s.record("broken", "state") == "cancelled");
  CHECK(s.record("broken", "total") == "1");
  CHECK_FALSE(s.record("broken", "finished").empty());
  const auto lines = lines_of(s.barista({"results", "broken"}).out);
  REQUIRE(lines.size() == 1);
  CHECK(parse_result_line(lines[0]).status == "invalid");
  const auto summary = s.barista({"results", "broken", "--summary"}).out;
  CHECK(field(summary, "state") == R"("cancelled")");
  CHECK(field(summary, "jobs") == "1");
  CHECK(s.barista({"cancel", "broken"}).err == "barista: batch 'broken' has already finished\n");
}

TEST_CASE("redis pool: submit --wait runs a batch to the end through the stream",
          "[integration][redis]") {
  if (!have_redis_server()) {
    return;
  }
  SharedPool s("echo", 2);
  s.d.start();
  std::string content;
  for (int i = 1; i <= 300; ++i) {
    content += "job-" + std::to_string(i) + "\n";
  }
  const auto r = s.submit("many.txt", content, {"--wait"});
  INFO(r.err << s.d.log_tail());
  CHECK(r.exit_code == 0);
  const auto out = lines_of(r.out);
  REQUIRE(out.size() == 2);
  CHECK(out[0] == "many");
  CHECK(field(out[1], "state") == R"("done")");
  CHECK(field(out[1], "jobs") == "300");
  CHECK(field(out[1], "ok") == "300");
  // The summary --wait printed is the batch's summary, as `results --summary` prints it.
  CHECK(s.barista({"results", "many", "--summary"}).out == out[1] + "\n");

  const auto ids = by_id(s.results("many"));
  REQUIRE(ids.size() == 300);
  for (int i = 1; i <= 300; ++i) {
    const auto& res = ids.at(std::to_string(i));
    CHECK(res.status == "ok");
    CHECK(res.output == "job-" + std::to_string(i));
  }
  CHECK(s.stream_entries().empty());  // every entry went once it had its result
  CHECK(s.barista({"cancel", "many"}).exit_code == 1);

  // A failure among them: exit 1, and the invalid line is counted.
  const auto some = s.submit("some.jsonl", "{\"id\":1,\"payload\":\"x\"}\nbad\n", {"--wait"});
  CHECK(some.exit_code == 1);
  const auto some_out = lines_of(some.out);
  REQUIRE(some_out.size() == 2);
  CHECK(field(some_out[1], "jobs") == "2");
  CHECK(field(some_out[1], "invalid") == "1");
  CHECK(field(some_out[1], "state") == R"("done")");
}

TEST_CASE("redis pool: a processor that ignores its deadline is abandoned and the pool goes on",
          "[integration][redis][abandon]") {
  if (!have_redis_server()) {
    return;
  }
  // One worker: the job behind the stuck one runs only if a fresh worker replaces it, and the
  // stuck job's `timeout` is recorded in Redis by the pool's housekeeping thread.
  SharedPool s("fx_slow", 1, "    timeout: 200ms\n    config:\n      ms: 10s\n");
  s.d.start();
  const auto r = s.submit("stuck.txt", "ignore-deadline\nflaky-1\n", {"--wait"});
  INFO(r.err << s.d.log_tail());
  CHECK(r.exit_code == 1);
  const auto out = lines_of(r.out);
  REQUIRE(out.size() == 2);
  CHECK(field(out[1], "timeout") == "1");
  CHECK(field(out[1], "ok") == "1");
  const auto ids = by_id(s.results("stuck"));
  REQUIRE(ids.size() == 2);
  CHECK(ids.at("1").status == "timeout");
  CHECK(ids.at("2").status == "ok");
  // The daemon still answers while the abandoned processor sleeps on.
  const auto status = s.barista({"status"});
  INFO(status.out);
  CHECK(status.exit_code == 0);
  CHECK(status.out.find("ABANDONED") != std::string::npos);
}

}  // namespace
}  // namespace barista::itest::redis_pools
