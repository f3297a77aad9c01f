// The fixture plugins do what other tests rely on them to do: if one silently stopped injecting
// its fault, the tests using it would pass for the wrong reason.

#include "daemon/plugin/plugin_library.hpp"

#include "tests/unit/plugin/plugin_test_support.hpp"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <stdexcept>
#include <string>

namespace barista::plugin {
namespace {

using std::chrono::milliseconds;
using testing::fixture;
using Clock = Context::Clock;

struct Attempt {
  Outcome outcome;
  milliseconds took;
};

Attempt attempt(const ProcessorHandle& processor, std::string_view payload, int number = 1,
                const std::atomic<bool>* cancel = nullptr,
                Clock::time_point deadline = Clock::time_point::max()) {
  Context ctx(cancel, deadline);
  const auto start = Clock::now();
  auto outcome = processor->process(ctx, Job{"1", payload, number});
  return {std::move(outcome), std::chrono::duration_cast<milliseconds>(Clock::now() - start)};
}

PluginConfig config_ms(const std::string& value) {
  ConfigValue v;
  v.kind = ConfigValue::Kind::kScalar;
  v.scalar = value;
  ConfigValue root;
  root.kind = ConfigValue::Kind::kMap;
  root.map.push_back({"ms", v});
  return PluginConfig(std::move(root));
}

// Runs `payload` through `processor` in a child process and returns the signal that killed it
// (0 when it exited normally). The library is loaded before the fork: the child only calls in.
int signal_of(const ProcessorHandle& processor, std::string_view payload) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::prctl(PR_SET_DUMPABLE, 0);  // no core file for a crash we asked for
    // Undo the test framework's handlers, which would report the crash as a failure.
    std::signal(SIGSEGV, SIG_DFL);
    std::signal(SIGABRT, SIG_DFL);
    Context ctx(nullptr, Clock::time_point::max());
    (void)processor->process(ctx, Job{"1", payload, 1});
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

TEST_CASE("fx_throwing_processor throws what it says", "[plugin]") {
  auto processor = PluginLibrary::open(fixture("fx_throwing_processor"))->create({});
  CHECK_THROWS_MATCHES(attempt(processor, "please throw"), std::runtime_error,
                       Catch::Matchers::Message("processor exploded: please throw"));
  CHECK_THROWS_AS(attempt(processor, "throw-int"), int);
  CHECK(attempt(processor, "calm").outcome.text() == "calm");
}

TEST_CASE("fx_slow sleeps, fails, flakes and honours cancellation", "[plugin]") {
  auto lib = PluginLibrary::open(fixture("fx_slow"));
  auto slow = lib->create(config_ms("30ms"));

  SECTION("sleeps `ms` and succeeds") {
    auto a = attempt(slow, "x");
    CHECK(a.outcome.is_ok());
    CHECK(a.outcome.text() == "slept");
    CHECK(a.took >= milliseconds(30));
  }
  SECTION("fail and fatal at once") {
    auto failed = attempt(slow, "fail");
    CHECK(failed.outcome.kind() == Outcome::Kind::kFailed);
    CHECK(failed.took < milliseconds(30));
    CHECK(attempt(slow, "fatal").outcome.kind() == Outcome::Kind::kFatal);
  }
  SECTION("flaky-3 fails twice, then succeeds") {
    CHECK(attempt(slow, "flaky-3", 1).outcome.kind() == Outcome::Kind::kFailed);
    CHECK(attempt(slow, "flaky-3", 2).outcome.kind() == Outcome::Kind::kFailed);
    auto third = attempt(slow, "flaky-3", 3);
    CHECK(third.outcome.is_ok());
    CHECK(third.outcome.text() == "ok after 3");
  }
  SECTION("cancelled: returns at once with fail(cancelled)") {
    auto long_sleep = lib->create(config_ms("1h"));
    std::atomic<bool> cancel{true};
    auto a = attempt(long_sleep, "x", 1, &cancel);
    CHECK(a.outcome.kind() == Outcome::Kind::kFailed);
    CHECK(a.outcome.text() == "cancelled");
    CHECK(a.took < milliseconds(1000));
  }
  SECTION("deadline: returns soon after it") {
    auto long_sleep = lib->create(config_ms("1h"));
    auto a = attempt(long_sleep, "x", 1, nullptr, Clock::now() + milliseconds(20));
    CHECK(a.outcome.text() == "deadline passed");
    CHECK(a.took >= milliseconds(20));
    CHECK(a.took < milliseconds(1000));
  }
  SECTION("ignore-deadline: sleeps through cancellation and deadline") {
    std::atomic<bool> cancel{true};
    auto a = attempt(slow, "ignore-deadline", 1, &cancel, Clock::now());
    CHECK(a.outcome.text() == "slept");
    CHECK(a.took >= milliseconds(30));
  }
  SECTION("a bad ms is a ConfigError") {
    CHECK_THROWS_AS(lib->create(config_ms("soon")), ConfigError);
  }
}

TEST_CASE("fx_crash really crashes", "[plugin]") {
  auto processor = PluginLibrary::open(fixture("fx_crash"))->create({});
  CHECK(signal_of(processor, "segv") == SIGSEGV);
  CHECK(signal_of(processor, "abort") == SIGABRT);
  CHECK(signal_of(processor, "fine") == 0);
}

}  // namespace
}  // namespace barista::plugin
