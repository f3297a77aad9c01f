// The key gate of a pool whose per-key state other daemons share (pool::SharedKeys): a start
// takes the shared slot too, a refused one sets the key aside until it may ask again, a slot is
// given back once, and throttles are told to the others but not told back.
#include "daemon/pool/key_gate.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace barista::test {
namespace {

using namespace std::chrono_literals;
using pool::Clock;

// Stands for the other daemons: `others` slots of every key are held elsewhere.
class FakeShared final : public pool::SharedKeys {
 public:
  std::optional<Clock::duration> take(std::string_view key, const config::PerKey& limits) override {
    if (auto hook = std::exchange(during_take, nullptr)) {
      hook();  // another worker, while this one waits for the answer
    }
    std::lock_guard lock(mutex);
    ++takes;
    if (held[std::string(key)] + others >= limits.max_in_flight) {
      return std::chrono::duration_cast<Clock::duration>(100ms);
    }
    ++held[std::string(key)];
    return std::nullopt;
  }
  void give_back(std::string_view key) override {
    std::lock_guard lock(mutex);
    --held[std::string(key)];
    ++given_back;
  }
  Clock::duration pace(std::string_view, const config::PerKey&) override {
    return std::chrono::duration_cast<Clock::duration>(250ms);
  }
  void throttle(std::string_view key, Clock::duration d) override {
    std::lock_guard lock(mutex);
    told.emplace_back(key, d);
  }

  std::function<void()> during_take;
  std::mutex mutex;
  int others = 0;
  int takes = 0;
  int given_back = 0;
  std::map<std::string, int> held;
  std::vector<std::pair<std::string, Clock::duration>> told;
};

config::PerKey at_most(int n) {
  config::PerKey limits;
  limits.max_in_flight = n;
  return limits;
}

TEST_CASE("shared gate: the others' slots count; a refused key waits, a freed one starts",
          "[pool][keys]") {
  pool::KeyGate gate(Clock::steady());
  auto shared = std::make_shared<FakeShared>();
  shared->others = 1;  // another daemon runs one attempt of every key
  gate.share(shared);
  gate.configure(at_most(2), 1000);

  auto until = Clock::time_point{};
  CHECK(gate.try_start("a", until));
  CHECK(shared->held["a"] == 1);
  // The second slot is the other daemon's: refused, and the key is held for 100 ms.
  const auto before = Clock::steady().now();
  CHECK_FALSE(gate.try_start("a", until));
  CHECK(until >= before + 100ms);
  CHECK(gate.blocked(10).size() == 1);
  CHECK(gate.blocked(10).front().at_limit);
  // Held: not even asked again until then.
  const int takes = shared->takes;
  CHECK_FALSE(gate.try_start("a", until));
  CHECK(shared->takes == takes);
  // Another key is not held up.
  CHECK(gate.try_start("b", until));

  // A job set aside for "a" starts once the other daemon's attempt has ended.
  pool::JobChunk one;
  REQUIRE(gate.park("a", &one));
  shared->others = 0;
  pool::JobChunk* ready = nullptr;
  const auto give_up = Clock::steady().now() + 2s;
  while (ready == nullptr && Clock::steady().now() < give_up) {
    ready = gate.take_ready();
    gate.wait_change(Clock::steady().now() + 20ms, [] { return false; });
  }
  REQUIRE(ready == &one);
  CHECK(one.admitted);
  CHECK(shared->held["a"] == 2);

  gate.done("a");
  gate.done("a");
  gate.done("b");
  CHECK(shared->given_back == 3);
  CHECK(shared->held["a"] == 0);
}

TEST_CASE("shared gate: a job set aside is looked at again after a refused take", "[pool][keys]") {
  // While one worker asks the others for the key's slot, the slot counts here: another worker
  // that looks at the jobs set aside then sees nothing that may start. The refusal must make
  // them be looked at again, or they would wait for ever (seen with three daemons).
  pool::KeyGate gate(Clock::steady());
  auto shared = std::make_shared<FakeShared>();
  shared->others = 1;
  gate.share(shared);
  gate.configure(at_most(1), 1000);
  pool::JobChunk one;
  pool::JobChunk two;
  REQUIRE(gate.park("a", &one));
  REQUIRE(gate.park("a", &two));
  pool::JobChunk* inner = &one;
  shared->during_take = [&] { inner = gate.take_ready(); };
  CHECK(gate.take_ready() == nullptr);  // refused: the others hold the slot
  CHECK(inner == nullptr);
  shared->others = 0;  // their attempt ended
  pool::JobChunk* ready = nullptr;
  const auto give_up = Clock::steady().now() + 2s;
  while (ready == nullptr && Clock::steady().now() < give_up) {
    ready = gate.take_ready();
    gate.wait_change(Clock::steady().now() + 20ms, [] { return false; });
  }
  CHECK(ready == &one);
  gate.done("a");
  CHECK(gate.drain().size() == 1);
}

TEST_CASE("shared gate: keys without per_key limits, and jobs without a key, ask no one",
          "[pool][keys]") {
  pool::KeyGate gate(Clock::steady());
  auto shared = std::make_shared<FakeShared>();
  gate.share(shared);
  gate.configure(at_most(1), 1000);
  auto until = Clock::time_point{};
  CHECK(gate.try_start("", until));
  gate.done("");
  gate.configure(config::PerKey{}, 1000);
  CHECK(gate.try_start("a", until));
  gate.done("a");
  CHECK(shared->takes == 0);
  CHECK(shared->given_back == 0);
}

TEST_CASE("shared gate: throttles are told to the others, not told back; pace is shared",
          "[pool][keys]") {
  pool::KeyGate gate(Clock::steady());
  auto shared = std::make_shared<FakeShared>();
  gate.share(shared);
  config::PerKey limits = at_most(4);
  limits.rate = config::Rate{1, 1000ms};
  gate.configure(limits, 1000);

  const auto now = Clock::steady().now();
  gate.throttle("a", now + 500ms);
  REQUIRE(shared->told.size() == 1);
  CHECK(shared->told[0].first == "a");
  CHECK(shared->told[0].second > 400ms);
  CHECK(shared->told[0].second <= 500ms);
  // Heard from another daemon: applied here, not told again.
  gate.throttle("b", now + 500ms, /*tell_others=*/false);
  CHECK(shared->told.size() == 1);
  auto until = Clock::time_point{};
  CHECK_FALSE(gate.try_start("b", until));
  CHECK(until == now + 500ms);
  // The shared rate reserves the retry's start, not the local one.
  const auto slot = gate.pace("c");
  CHECK(slot >= now + 250ms);
  CHECK(slot < now + 1000ms);
}

}  // namespace
}  // namespace barista::test
