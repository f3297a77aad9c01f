// The exec protocol (docs/workers.md#the-exec-protocol): what the daemon sends a worker, and
// which of the lines a worker writes are results.
#include "daemon/isolation/exec_protocol.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace barista::test {
namespace {

using isolation::parse_result;

TEST_CASE("exec protocol: job and cancel messages", "[isolation]") {
  CHECK(
      isolation::job_message("17", "hi \"you\"", 2, "example.org",
                             std::chrono::milliseconds(29500)) ==
      R"({"attempt":2,"deadline_ms":29500,"id":"17","key":"example.org","payload":"hi \"you\""})");
  // No key, no deadline: left out. Bytes that are not UTF-8 go as U+FFFD.
  CHECK(isolation::job_message("1", "a\xff", 1, "", std::nullopt) ==
        "{\"attempt\":1,\"id\":\"1\",\"payload\":\"a\xEF\xBF\xBD\"}");
  CHECK(isolation::cancel_message("17") == R"({"cancel":"17"})");
  std::string why;
  const auto back = isolation::parse_inbound(
      isolation::job_message("9", "p", 3, "k", std::chrono::milliseconds(5)), why);
  REQUIRE(back);
  REQUIRE(back->job);
  CHECK(back->job->id == "9");
  CHECK(back->job->payload == "p");
  CHECK(back->job->attempt == 3);
  CHECK(back->job->key == "k");
  CHECK(back->job->deadline == std::chrono::milliseconds(5));
  const auto cancel = isolation::parse_inbound(R"({"cancel":"9"})", why);
  REQUIRE(cancel);
  CHECK(cancel->cancel == "9");
}

TEST_CASE("exec protocol: results of each status", "[isolation]") {
  std::string why;
  auto r = parse_result(R"({"id":"17","status":"ok","output":"done"})", why);
  REQUIRE(r);
  CHECK(r->id == "17");
  CHECK(r->outcome.kind() == Outcome::Kind::kOk);
  CHECK(r->outcome.text() == "done");
  r = parse_result(R"({"id":"1","status":"ok"})", why);
  REQUIRE(r);
  CHECK(r->outcome.text().empty());
  r = parse_result(R"({"id":"1","status":"fail","error":"try again"})", why);
  REQUIRE(r);
  CHECK(r->outcome.kind() == Outcome::Kind::kFailed);
  CHECK(r->outcome.text() == "try again");
  r = parse_result(R"({"id":"1","status":"fatal","error":"bad input"})", why);
  REQUIRE(r);
  CHECK(r->outcome.kind() == Outcome::Kind::kFatal);
  r = parse_result(R"({"id":"1","status":"throttle","retry_after_ms":1500,"error":"429"})", why);
  REQUIRE(r);
  CHECK(r->outcome.kind() == Outcome::Kind::kThrottled);
  CHECK(r->outcome.retry_after() == std::chrono::milliseconds(1500));
  // Round trip of what barista-worker writes.
  r = parse_result(
      isolation::result_message("5", Outcome::throttle(std::chrono::milliseconds(7), "w")), why);
  REQUIRE(r);
  CHECK(r->outcome.retry_after() == std::chrono::milliseconds(7));
  CHECK(r->outcome.text() == "w");
}

TEST_CASE("exec protocol: lines that are not results say why", "[isolation]") {
  const auto why_of = [](std::string_view line) {
    std::string why;
    CHECK_FALSE(parse_result(line, why));
    return why;
  };
  CHECK(why_of("garbage").starts_with("not JSON: "));
  CHECK(why_of("{\"id\":\"1\",\"status\":\"ok\",\"output\":\"\xff\"}").find("UTF-8") !=
        std::string::npos);
  CHECK(why_of("[1,2]") == "not a JSON object");
  CHECK(why_of(R"({"status":"ok"})") == "a result needs a string \"id\"");
  CHECK(why_of(R"({"id":17,"status":"ok"})") == "a result needs a string \"id\"");
  CHECK(why_of(R"({"id":"1"})").starts_with("a result needs a string \"status\""));
  CHECK(why_of(R"({"id":"1","status":"maybe"})").starts_with("unknown status \"maybe\""));
  CHECK(why_of(R"({"id":"1","status":"ok","output":3})") == "\"output\" must be a string");
  CHECK(why_of(R"({"id":"1","status":"throttle","retry_after_ms":"soon"})") ==
        "\"retry_after_ms\" must be a number");
}

}  // namespace
}  // namespace barista::test
