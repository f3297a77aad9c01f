#include "daemon/redis/redis_client.hpp"
#include "daemon/redis/model.hpp"
#include "daemon/redis/stream_store.hpp"
#include "tests/unit/redis/redis_test_support.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

using barista::redis::Client;
using barista::redis::RedisError;
using barista::redis::ReplyError;
using barista::redis::Subscriber;
using barista::testing::RedisServer;
using namespace barista::redis_test;

TEST_CASE("redis client: binary-safe commands and pipelines", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  Client client(redis_config(server), kTimeout);
  REQUIRE(client.connected());
  CHECK(client.endpoint() == "127.0.0.1:" + std::to_string(server.port()));

  const std::string value("a\0b\r\nc", 6);  // a NUL and a CRLF in the middle
  CHECK(client.command({"SET", "k", value}).str() == "OK");
  const auto got = client.command({"GET", "k"});
  CHECK(got.is_string());
  CHECK(got.str() == value);
  CHECK(client.command({"GET", "absent"}).is_nil());

  const auto replies = client.pipeline(
      {{"RPUSH", "l", "x", "y"}, {"LRANGE", "l", "0", "-1"}, {"INCRBY", "n", "41"}, {"INCR", "n"}});
  REQUIRE(replies.size() == 4);
  CHECK(replies[0].integer() == 2);
  REQUIRE(replies[1].is_array());
  CHECK(replies[1].size() == 2);
  CHECK(replies[1].at(1).str() == "y");
  CHECK(replies[3].integer() == 42);
  CHECK_THROWS_AS(replies[1].at(2), RedisError);
}

TEST_CASE("redis client: an error reply throws, and the connection stays usable", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  Client client(redis_config(server), kTimeout);
  client.command({"SET", "s", "text"});

  try {
    client.command({"INCR", "s"});
    FAIL("INCR of a non-number did not throw");
  } catch (const ReplyError& e) {
    CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(server.port())) !=
          std::string::npos);
    CHECK(e.reply().starts_with("ERR"));
  }
  CHECK(client.connected());

  // In a pipeline every reply is read before the error is thrown, so the next command gets its
  // own answer and not a left-over one.
  CHECK_THROWS_AS(client.pipeline({{"INCR", "s"}, {"SET", "after", "1"}}), ReplyError);
  CHECK(client.command({"GET", "after"}).str() == "1");
  CHECK(client.command({"PING"}).str() == "PONG");
}

TEST_CASE("redis client: AUTH with the url's password and SELECT of its db", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  auto cfg = redis_config(server);
  {
    Client admin(cfg, kTimeout);
    admin.command({"CONFIG", "SET", "requirepass", "s3cret"});
  }
  // Without the password every command is refused.
  Client anonymous(cfg, kTimeout);
  CHECK_THROWS_WITH(anonymous.command({"PING"}), Catch::Contains("NOAUTH"));

  cfg.password = "s3cret";
  cfg.db = 3;
  Client in_db3(cfg, kTimeout);
  in_db3.command({"SET", "where", "three"});
  cfg.db = 0;
  Client in_db0(cfg, kTimeout);
  CHECK(in_db0.command({"GET", "where"}).is_nil());
  in_db0.command({"SELECT", "3"});
  CHECK(in_db0.command({"GET", "where"}).str() == "three");

  cfg.password = "wrong";
  CHECK_THROWS_AS(Client(cfg, kTimeout), ReplyError);
}

TEST_CASE("redis subscriber: waits no longer than asked, then gets the message", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  RedisServer server;
  const auto cfg = redis_config(server);
  Subscriber sub(cfg, kTimeout, "chan");
  Client pub(cfg, kTimeout);

  const auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(sub.next_message(150ms).has_value());
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 140ms);
  CHECK(waited < 1s);

  pub.command({"PUBLISH", "other", "not for us"});
  CHECK(pub.command({"PUBLISH", "chan", "one"}).integer() == 1);
  CHECK(pub.command({"PUBLISH", "chan", "two"}).integer() == 1);
  CHECK(sub.next_message(2s) == std::optional<std::string>("one"));
  // "two" may already be buffered with "one": it must come out without a new read.
  CHECK(sub.next_message(2s) == std::optional<std::string>("two"));
  CHECK_FALSE(sub.next_message(50ms).has_value());

  // A message published while the subscriber is waiting ends the wait early.
  // jthread: joined even when a check below throws out of the test.
  std::jthread later([&] {
    std::this_thread::sleep_for(100ms);
    Client(cfg, kTimeout).command({"PUBLISH", "chan", "three"});
  });
  const auto t1 = std::chrono::steady_clock::now();
  const auto third = sub.next_message(5s);
  later.join();
  CHECK(third == std::optional<std::string>("three"));
  CHECK(std::chrono::steady_clock::now() - t1 < 3s);
}

TEST_CASE("redis client: the server killed, then restarted with its data", "[redis]") {
  if (!have_redis_server()) {
    return;
  }
  // "always": every acknowledged write must be in the append-only file when the server dies.
  RedisServer server("always");
  const auto cfg = redis_config(server);
  const std::string endpoint = "127.0.0.1:" + std::to_string(server.port());
  std::string batch;
  {
    barista::redis::StreamStore store(cfg, 1024, kTimeout);
    store.ensure_group();
    batch = store.begin_batch("survivor", "test", false, "2026-01-01T00:00:00.000Z");
    store.add_jobs(batch, {{"1", "one"}, {"2", "two"}});
    store.end_batch(batch, 2, "2026-01-01T00:00:01.000Z", 60s);
  }
  Client client(cfg, kTimeout);
  client.command({"SET", "kept", "yes"});
  Subscriber sub(cfg, kTimeout, std::string(barista::redis::kCancelChannel));

  server.kill9();
  CHECK_THROWS_WITH(client.command({"PING"}), Catch::Contains(endpoint));
  CHECK_FALSE(client.connected());
  CHECK_THROWS_WITH(client.command({"PING"}),
                    Catch::Contains(endpoint) && Catch::Contains("not connected"));
  CHECK_THROWS_WITH(sub.next_message(1s), Catch::Contains(endpoint));
  CHECK_FALSE(sub.connected());
  CHECK_THROWS_WITH(Client(cfg, kTimeout),
                    Catch::Contains(endpoint) && Catch::Contains("cannot connect"));

  server.restart();
  Client again(cfg, kTimeout);
  CHECK(again.command({"GET", "kept"}).str() == "yes");
  barista::redis::StreamStore store(cfg, 1024, kTimeout);
  const auto record = store.batch(batch);
  REQUIRE(record.has_value());
  CHECK(record->state == "running");
  CHECK(record->total == std::optional<std::uint64_t>(2));
  const auto entries = store.read_new(10, 0ms);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].payload == "one");
  CHECK(entries[1].payload == "two");
}
