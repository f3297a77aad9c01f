// The replies the daemon writes and the CLI reads are one definition (replies.hpp): each value
// written with to_line() reads back as the same value, and the lines are the documented ones.
#include "daemon/control/replies.hpp"
#include "daemon/control/replies_read.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace barista::control {
namespace {

ReplyJson parsed(const std::string& line) {
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  REQUIRE(line.find('\n') == line.size() - 1);  // one line
  return ReplyJson::parse(line);
}

TEST_CASE("a status reply reads back as written", "[control][replies]") {
  StatusReply s;
  s.pools.push_back({"fetch \"eu\"",
                     "http_fetch",
                     50,
                     7,
                     1024,
                     "cancel_all",
                     2,
                     "",
                     {},
                     "cannot write results: Input/output error",
                     true,
                     {"a.test", "b \"quoted\""},
                     12,
                     3,
                     {{"a.test", 0, 40, true, false, 0, ""},
                      {"", 2, 7, false, true, 1500, "2026-12-02T18:00:00.000Z"}},
                     5,
                     "exited with status 1"});
  s.pools.push_back(
      {"shared", "echo", 2, 0, 0, "continue", 0, "connected", 0, "", false, {}, 0, 0, {}, 0, ""});
  s.batches.push_back({"b1", "shared", 3, 9, 1, false});
  s.batches.push_back({"b\xc3\xa9", "fetch \"eu\"", 9, 9, 0, true});
  s.generation = 4;
  const auto line = to_line(s);
  CHECK(line.starts_with(R"({"ok":true,"pools":[{"name":"fetch \"eu\"","plugin":"http_fetch",)"
                         R"("workers":50,"busy":7,"queued":1024,"on_error":"cancel_all",)"
                         R"("abandoned":2,)"
                         R"("storage_error":"cannot write results: Input/output error",)"
                         R"("paused":true,"paused_keys":["a.test","b \"quoted\""],)"
                         R"("throttles":12,"keys_blocked":3,)"
                         R"("worker_restarts":5,"workers_failing":"exited with status 1",)"
                         R"("keys":[)"));
  CHECK(line.find(R"("redis":"connected","pending":0,"paused":false)") != std::string::npos);
  CHECK(line.ends_with(R"("generation":4})"
                       "\n"));
  const auto back = read_status(parsed(line));
  REQUIRE(back);
  CHECK(*back == s);
}

TEST_CASE("a status reply without its pools or batches is not one", "[control][replies]") {
  CHECK_FALSE(read_status(ReplyJson::parse(R"({"ok":true,"pools":[]})")));
  CHECK_FALSE(read_status(ReplyJson::parse(R"({"ok":true,"batches":[],"pools":{}})")));
  // Members an older daemon does not send read as their defaults; a batch's total as final.
  const auto old = read_status(ReplyJson::parse(
      R"({"ok":true,"pools":[{"name":"p","workers":-1}],"batches":[{"batch":"b","done":2}]})"));
  REQUIRE(old);
  REQUIRE(old->pools.size() == 1);
  CHECK(old->pools[0].workers == 0);
  CHECK_FALSE(old->pools[0].pending);
  REQUIRE(old->batches.size() == 1);
  CHECK(old->batches[0].read_all);
  CHECK(old->generation == 0);
}

TEST_CASE("a submit reply reads back as written, warnings and all", "[control][replies]") {
  const SubmitReply plain{"jobs", "echo", {}};
  CHECK(to_line(plain) == R"({"ok":true,"batch":"jobs","pool":"echo"})"
                          "\n");
  CHECK(read_submit(parsed(to_line(plain))) == plain);
  const SubmitReply warned{"b", "p", {"2 job ids used twice", "x"}};
  CHECK(read_submit(parsed(to_line(warned))) == warned);
  CHECK_FALSE(read_submit(ReplyJson::parse(R"({"ok":true,"batch":7})")));
}

TEST_CASE("a reload reply reads back as written", "[control][replies]") {
  const ReloadReply applied{true, 3, 0, {"pool 'a': workers 2 -> 4"}, {}};
  CHECK(to_line(applied) ==
        R"({"ok":true,"generation":3,"code":0,"changes":["pool 'a': workers 2 -> 4"],"errors":[]})"
        "\n");
  CHECK(read_reload(parsed(to_line(applied))) == applied);
  const ReloadReply rejected{false, 3, 1, {}, {"barista.yaml:4:12: bad \"workers\""}};
  CHECK(read_reload(parsed(to_line(rejected))) == rejected);
  // A code that is no exit code reads as none.
  CHECK(read_reload(ReplyJson::parse(R"({"ok":false,"code":-5})")).code == 0);
  CHECK(read_reload(ReplyJson::parse(R"({"ok":false,"code":99999999999})")).code == 0);
}

TEST_CASE("a wait's progress line reads back without batch or pool", "[control][replies]") {
  const BatchProgress p{"ignored", "", 5, 8, 2, false};
  const auto line = progress_line(p);
  CHECK(line == R"({"progress":{"done":5,"total":8,"failed":2,"read_all":false}})"
                "\n");
  auto expected = p;
  expected.batch.clear();
  CHECK(read_progress(parsed(line)) == expected);
  CHECK_FALSE(read_progress(ReplyJson::parse(R"({"ok":true})")));
}

TEST_CASE("a summary line carries the summary byte for byte", "[control][replies]") {
  const std::string summary = R"({"batch":"b","state":"done","total":1})";
  const auto line = summary_line(summary);
  REQUIRE(line.starts_with(kSummaryLinePrefix));
  CHECK(line.substr(kSummaryLinePrefix.size(), line.size() - kSummaryLinePrefix.size() - 2) ==
        summary);
  CHECK(parsed(line)["summary"]["state"] == "done");
  CHECK(ok_line() == "{\"ok\":true}\n");
}

}  // namespace
}  // namespace barista::control
