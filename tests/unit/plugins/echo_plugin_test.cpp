#include "tests/unit/plugins/bundled_plugin_support.hpp"

#include <catch2/catch.hpp>

namespace barista::bundled_plugins_test {
namespace {

using Kind = Outcome::Kind;

TEST_CASE("echo outputs the payload", "[plugins][echo]") {
  auto echo = make_processor("echo", Config());
  auto out = run(echo, "hello, world");
  CHECK(out.kind() == Kind::kOk);
  CHECK(out.text() == "hello, world");
  CHECK(run(echo, "").text().empty());
  CHECK(echo.library().name() == "echo");
}

TEST_CASE("echo fails a job whose payload contains fail_on", "[plugins][echo]") {
  auto echo = make_processor("echo", Config().set("fail_on", "boom"));
  auto failed = run(echo, "tick boom tock");
  CHECK(failed.kind() == Kind::kFailed);
  CHECK(failed.text() == "payload contains 'boom'");
  auto passed = run(echo, "tick bo om tock");
  CHECK(passed.kind() == Kind::kOk);
  CHECK(passed.text() == "tick bo om tock");
}

TEST_CASE("echo sleeps delay per job", "[plugins][echo]") {
  auto echo = make_processor("echo", Config().set("delay", "120ms"));
  const auto start = Clock::now();
  auto out = run(echo, "x");
  CHECK(out.kind() == Kind::kOk);
  CHECK(out.text() == "x");
  CHECK(ms_since(start) >= 120.0);
}

TEST_CASE("echo's delay is cut short by cancellation", "[plugins][echo]") {
  auto echo = make_processor("echo", Config().set("delay", "30s"));
  Attempt attempt;
  attempt.cancel_after(50ms);
  auto out = run(echo, "x", attempt);
  const auto returned = Clock::now();
  CHECK(out.kind() == Kind::kFailed);
  CHECK(out.text() == "cancelled");
  CHECK(returned - attempt.cancelled_at() < 100ms);
}

TEST_CASE("echo's delay stops at the deadline", "[plugins][echo]") {
  auto echo = make_processor("echo", Config().set("delay", "30s"));
  Attempt attempt(150ms);
  const auto start = Clock::now();
  auto out = run(echo, "x", attempt);
  CHECK(out.kind() == Kind::kFailed);
  CHECK(out.text() == "deadline exceeded");
  CHECK(ms_since(start) >= 150.0);
  CHECK(ms_since(start) < 1000.0);
}

TEST_CASE("echo refuses a bad config", "[plugins][echo]") {
  SECTION("a misspelt key, with a suggestion") {
    auto error = config_error("echo", Config().set("dealy", "10ms"));
    CHECK(error == "unknown key 'dealy' (did you mean 'delay'?)");
  }
  SECTION("a delay that is not a duration") {
    auto error = config_error("echo", Config().set("delay", "soon"));
    CHECK_THAT(error, Catch::Contains("expected a duration"));
  }
  SECTION("fail_on that is not a string") {
    auto error = config_error("echo", Config().map("fail_on"));
    CHECK_THAT(error, Catch::Contains("expected a string"));
  }
  SECTION("an empty fail_on, which every payload would match") {
    auto error = config_error("echo", Config().set("fail_on", ""));
    CHECK(error == "must not be empty");
  }
  SECTION("the error carries the key's location") {
    try {
      auto echo = make_processor("echo", Config().set("fail_on", "x").set("delay", "later"));
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      CHECK(e.key() == "delay");
      CHECK(e.line() == 3);
    }
  }
}

}  // namespace
}  // namespace barista::bundled_plugins_test
