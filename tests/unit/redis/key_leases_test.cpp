// Per-key limits, throttles and pauses kept in Redis for every daemon of a pool
// (daemon/redis/key_leases.hpp), against a real redis-server: two KeyLeases stand for two daemons.
#include "daemon/redis/key_leases.hpp"
#include "tests/unit/redis/redis_test_support.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

using barista::redis::Client;
using barista::redis::KeyLeases;
using barista::redis::KeysMessage;
using barista::redis::Subscriber;
using barista::testing::RedisServer;
using namespace barista::redis_test;

namespace {

barista::config::PerKey at_most(int n) {
  barista::config::PerKey limits;
  limits.max_in_flight = n;
  return limits;
}

}  // namespace

TEST_CASE("key leases: max_in_flight holds across daemons; a slot given back is free again",
          "[redis][keys]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  auto cfg = redis_config(server, "a");
  cfg.claim_after = 30s;
  KeyLeases a("p", cfg);
  cfg.consumer = "b";
  KeyLeases b("p", cfg);
  const auto two = at_most(2);

  CHECK_FALSE(a.take("site", two).has_value());
  CHECK_FALSE(b.take("site", two).has_value());
  // Both slots are held, one on each daemon: neither may start a third.
  const auto refused = a.take("site", two);
  REQUIRE(refused.has_value());
  CHECK(*refused > 0ms);
  CHECK(b.take("site", two).has_value());
  // Another key has slots of its own.
  CHECK_FALSE(b.take("other", two).has_value());
  CHECK(a.held() == 1);
  CHECK(b.held() == 2);

  b.give_back("site");
  CHECK(b.held() == 1);
  CHECK_FALSE(a.take("site", two).has_value());
  CHECK(a.held() == 2);
}

TEST_CASE("key leases: a dead daemon's slots lapse after claim_after; a live one's do not",
          "[redis][keys]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  auto cfg = redis_config(server, "live");
  cfg.claim_after = 600ms;
  KeyLeases live("p", cfg);
  live.start();  // renews its leases every 200 ms
  cfg.consumer = "dead";
  {
    KeyLeases dead("p", cfg);  // never renews, never gives back: as after kill -9
    CHECK_FALSE(dead.take("site", at_most(2)).has_value());
  }
  CHECK_FALSE(live.take("site", at_most(2)).has_value());
  KeyLeases other("p", cfg);
  CHECK(other.take("site", at_most(2)).has_value());
  std::this_thread::sleep_for(1200ms);  // two leases: the dead one lapsed, the live one renewed
  CHECK_FALSE(other.take("site", at_most(2)).has_value());
  CHECK(other.take("site", at_most(2)).has_value());  // the live daemon's slot still holds
  live.stop();
}

TEST_CASE("key leases: per_key.rate is one rate for all daemons", "[redis][keys]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  auto cfg = redis_config(server, "a");
  KeyLeases a("p", cfg);
  cfg.consumer = "b";
  KeyLeases b("p", cfg);
  barista::config::PerKey limits;
  limits.rate = barista::config::Rate{2, 1000ms};  // one start per 500 ms

  CHECK_FALSE(a.take("site", limits).has_value());
  const auto wait = b.take("site", limits);
  REQUIRE(wait.has_value());
  CHECK(*wait > 300ms);
  CHECK(*wait <= 500ms);
  // A retry holding its slot reserves the next start: 500 ms on, then 1 s on.
  const auto first = a.pace("site", limits);
  const auto second = b.pace("site", limits);
  CHECK(first > 300ms);
  CHECK(first <= 500ms);
  CHECK(second - first > 400ms);
  CHECK(second - first <= 500ms);
}

TEST_CASE("key leases: a throttle is kept, published and refuses the key's starts",
          "[redis][keys]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server, "a");
  Subscriber sub(cfg, kTimeout, barista::redis::keys_channel(cfg.stream));
  KeyLeases a("p", cfg);
  a.throttle("site", 800ms);
  a.throttle("", 300ms);  // the pool's jobs without a key

  const auto heard = sub.next_message(2s);
  REQUIRE(heard.has_value());
  const auto m = barista::redis::parse_keys_message(*heard);
  CHECK(m.kind == KeysMessage::Kind::kThrottle);
  CHECK(m.key == "site");
  CHECK(m.for_ == 800ms);
  const auto pool_wide = barista::redis::parse_keys_message(sub.next_message(2s).value_or(""));
  CHECK(pool_wide.kind == KeysMessage::Kind::kThrottle);
  CHECK(pool_wide.key.empty());

  Client client(cfg, kTimeout);
  const auto kept = barista::redis::read_throttles(client, cfg.stream);
  REQUIRE(kept.size() == 2);
  for (const auto& [key, left] : kept) {
    CHECK(left > 0ms);
    CHECK(left <= (key.empty() ? 300ms : 800ms));
  }
  // Another daemon may not start the key while it is throttled, even with slots free.
  auto other_cfg = cfg;
  other_cfg.consumer = "b";
  KeyLeases b("p", other_cfg);
  const auto wait = b.take("site", at_most(5));
  REQUIRE(wait.has_value());
  CHECK(*wait > 300ms);
  CHECK(*wait <= 800ms);
  std::this_thread::sleep_for(900ms);
  CHECK_FALSE(b.take("site", at_most(5)).has_value());
  CHECK(barista::redis::read_throttles(client, cfg.stream).empty());
}

TEST_CASE("key leases: pauses are a set in Redis, told on the channel", "[redis][keys]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  Subscriber sub(cfg, kTimeout, barista::redis::keys_channel(cfg.stream));
  Client client(cfg, kTimeout);
  using barista::redis::change_pause;
  using barista::redis::read_pauses;

  CHECK(change_pause(client, cfg.stream, true, "site a"));
  CHECK_FALSE(change_pause(client, cfg.stream, true, "site a"));  // paused already
  CHECK(change_pause(client, cfg.stream, true, ""));              // the pool
  auto now = read_pauses(client, cfg.stream);
  CHECK(now.pool);
  CHECK(now.keys == std::set<std::string>{"site a"});
  CHECK(sub.next_message(2s) == std::optional<std::string>("pauses"));
  CHECK(sub.next_message(2s) == std::optional<std::string>("pauses"));
  CHECK_FALSE(sub.next_message(100ms).has_value());  // nothing changed: nothing told

  CHECK(change_pause(client, cfg.stream, false, ""));
  CHECK(change_pause(client, cfg.stream, false, "site a"));
  CHECK_FALSE(change_pause(client, cfg.stream, false, "site a"));
  now = read_pauses(client, cfg.stream);
  CHECK_FALSE(now.pool);
  CHECK(now.keys.empty());
}

TEST_CASE("key leases: messages other than throttles and pauses are ignored", "[keys]") {
  using barista::redis::parse_keys_message;
  CHECK(parse_keys_message("throttle 1500 a key with spaces").key == "a key with spaces");
  CHECK(parse_keys_message("throttle 1500 ").kind == KeysMessage::Kind::kThrottle);
  CHECK(parse_keys_message("throttle 1500 ").key.empty());
  CHECK(parse_keys_message("throttle -5 k").kind == KeysMessage::Kind::kOther);
  CHECK(parse_keys_message("throttle x k").kind == KeysMessage::Kind::kOther);
  CHECK(parse_keys_message("throttle 15").kind == KeysMessage::Kind::kOther);
  CHECK(parse_keys_message("").kind == KeysMessage::Kind::kOther);
  CHECK(parse_keys_message("pauses").kind == KeysMessage::Kind::kPauses);
}
