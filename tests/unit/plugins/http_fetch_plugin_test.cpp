#include "tests/unit/plugins/bundled_plugin_support.hpp"
#include "tests/unit/plugins/http_test_server.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

namespace barista::bundled_plugins_test {
namespace {

using Kind = Outcome::Kind;
namespace fs = std::filesystem;

std::string status_json(int status, std::size_t bytes) {
  return R"({"status":)" + std::to_string(status) + R"(,"bytes":)" + std::to_string(bytes) + "}";
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    out.push_back(entry.path().filename().string());
  }
  return out;
}

// A port on 127.0.0.1 that nothing listens on (bound, then released).
std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  REQUIRE(bound);
  return ntohs(addr.sin_port);
}

TEST_CASE("http_fetch outputs the status and the body's size", "[plugins][http_fetch]") {
  HttpTestServer server;
  auto p = make_processor("http_fetch", Config());
  auto out = run(p, server.url("/hello"));
  CHECK(out.kind() == Kind::kOk);
  CHECK(out.text() == status_json(200, 12));

  SECTION("a large body") {
    CHECK(run(p, server.url("/bytes/3000000")).text() == status_json(200, 3000000));
  }
  SECTION("a redirect is followed") {
    CHECK(run(p, server.url("/redirect")).text() == status_json(200, 12));
  }
  SECTION("one connection serves job after job (keep-alive)") {
    for (int i = 0; i < 5; ++i) {
      REQUIRE(run(p, server.url("/bytes/1000")).kind() == Kind::kOk);
    }
    CHECK(server.requests() == 6);
    CHECK(server.connections() == 1);
  }
}

TEST_CASE("http_fetch saves bodies in save_dir, named by the URL's SHA-256",
          "[plugins][http_fetch]") {
  HttpTestServer server;
  TempDir dir;
  auto p = make_processor("http_fetch", Config().set("save_dir", dir.path().string()));
  const auto url = server.url("/bytes/2500000");
  auto out = run(p, url);
  CHECK(out.kind() == Kind::kOk);
  CHECK(out.text() == status_json(200, 2500000));
  CHECK(entries(dir.path()) == std::vector<std::string>{sha256_hex(url)});
  CHECK(read_file(dir / sha256_hex(url)) == pattern_body(2500000));

  SECTION("a second fetch of the same URL replaces the file") {
    write_file(dir / sha256_hex(url), "stale");
    REQUIRE(run(p, url).kind() == Kind::kOk);
    CHECK(read_file(dir / sha256_hex(url)) == pattern_body(2500000));
    CHECK(entries(dir.path()).size() == 1);
  }
  SECTION("a symlink planted under the name is replaced, not followed") {
    TempDir elsewhere;
    write_file(elsewhere / "victim", "untouched");
    const auto hello = server.url("/hello");
    fs::create_symlink(elsewhere / "victim", dir / sha256_hex(hello));
    REQUIRE(run(p, hello).kind() == Kind::kOk);
    CHECK(read_file(elsewhere / "victim") == "untouched");
    CHECK(!fs::is_symlink(dir / sha256_hex(hello)));
    CHECK(read_file(dir / sha256_hex(hello)) == "hello world\n");
  }
  SECTION("failed fetches leave nothing behind") {
    run(p, server.url("/missing"));
    run(p, server.url("/unavailable"));
    CHECK(entries(dir.path()).size() == 1);
  }
}

TEST_CASE("http_fetch tells retryable failures from fatal ones", "[plugins][http_fetch]") {
  HttpTestServer server;
  auto p = make_processor("http_fetch", Config());
  SECTION("404 is fatal") {
    auto out = run(p, server.url("/missing"));
    CHECK(out.kind() == Kind::kFatal);
    CHECK(out.text() == "HTTP 404");
  }
  SECTION("429 is a throttle; without Retry-After the pool chooses the wait") {
    auto out = run(p, server.url("/busy"));
    CHECK(out.kind() == Kind::kThrottled);
    CHECK(out.retry_after() == std::chrono::milliseconds(0));
    CHECK(out.text() == "HTTP 429");
  }
  SECTION("429 with Retry-After in seconds waits that long") {
    auto out = run(p, server.url("/busy-for/7"));
    CHECK(out.kind() == Kind::kThrottled);
    CHECK(out.retry_after() == std::chrono::milliseconds(7000));
    CHECK(out.text() == "HTTP 429 Retry-After 7");
  }
  SECTION("429 with Retry-After as an HTTP date waits until then") {
    auto out = run(p, server.url("/busy-until-date"));
    CHECK(out.kind() == Kind::kThrottled);
    CHECK(out.retry_after() >= std::chrono::seconds(110));
    CHECK(out.retry_after() <= std::chrono::seconds(121));
  }
  SECTION("503 with Retry-After is a throttle") {
    auto out = run(p, server.url("/unavailable-for/2"));
    CHECK(out.kind() == Kind::kThrottled);
    CHECK(out.retry_after() == std::chrono::milliseconds(2000));
  }
  SECTION("503 without Retry-After is retryable") {
    auto out = run(p, server.url("/unavailable"));
    CHECK(out.kind() == Kind::kFailed);
    CHECK(out.text() == "HTTP 503");
  }
  SECTION("a refused connection is retryable, with curl's explanation") {
    auto out = run(p, "http://127.0.0.1:" + std::to_string(closed_port()) + "/");
    CHECK(out.kind() == Kind::kFailed);
    CHECK_THAT(out.text(), Catch::Contains("onnect"));
  }
  SECTION("URLs that are not http or https are fatal") {
    for (const char* url : {"ftp://127.0.0.1/file", "file:///etc/passwd", "example.com", ""}) {
      INFO(url);
      CHECK(run(p, url).kind() == Kind::kFatal);
    }
    CHECK(run(p, "HTTP://127.0.0.1:" + std::to_string(server.port()) + "/hello").kind() ==
          Kind::kOk);
    CHECK(server.requests() == 1);
  }
}

TEST_CASE("http_fetch refuses bodies beyond max_bytes", "[plugins][http_fetch]") {
  HttpTestServer server;
  TempDir dir;
  auto p = make_processor("http_fetch",
                          Config().set("max_bytes", "1KiB").set("save_dir", dir.path().string()));
  CHECK(run(p, server.url("/bytes/1024")).text() == status_json(200, 1024));
  SECTION("announced by Content-Length") {
    auto out = run(p, server.url("/bytes/5000"));
    CHECK(out.kind() == Kind::kFatal);
    CHECK(out.text() == "body exceeds max_bytes (1024 bytes)");
  }
  SECTION("found out while reading a body of unknown length") {
    auto out = run(p, server.url("/stream/5000"));
    CHECK(out.kind() == Kind::kFatal);
    CHECK(out.text() == "body exceeds max_bytes (1024 bytes)");
  }
  CHECK(entries(dir.path()).size() == 1);  // only the body that fit
}

TEST_CASE("http_fetch honours the deadline", "[plugins][http_fetch]") {
  HttpTestServer server;
  auto p = make_processor("http_fetch", Config());
  Attempt attempt(200ms);
  const auto start = Clock::now();
  auto out = run(p, server.url("/slow/5000"), attempt);
  CHECK(out.kind() == Kind::kFailed);
  CHECK(out.text() == "deadline exceeded");
  CHECK(ms_since(start) < 1000.0);
}

TEST_CASE("http_fetch stops a transfer when cancelled", "[plugins][http_fetch]") {
  HttpTestServer server;
  TempDir dir;
  auto p = make_processor("http_fetch", Config().set("save_dir", dir.path().string()));
  Attempt attempt;
  attempt.cancel_after(300ms);
  auto out = run(p, server.url("/drip"), attempt);
  const auto returned = Clock::now();
  CHECK(out.kind() == Kind::kFailed);
  CHECK(out.text() == "cancelled");
  CHECK(returned - attempt.cancelled_at() < 200ms);
  CHECK(entries(dir.path()).empty());
  // The processor is still good for the next job.
  CHECK(run(p, server.url("/hello")).kind() == Kind::kOk);
}

TEST_CASE("http_fetch sends user_agent", "[plugins][http_fetch]") {
  HttpTestServer server;
  run(make_processor("http_fetch", Config()), server.url("/hello"));
  run(make_processor("http_fetch", Config().set("user_agent", "coffee-bot/2.1")),
      server.url("/hello"));
  CHECK(server.user_agents() == std::vector<std::string>{"barista/1.0", "coffee-bot/2.1"});
}

TEST_CASE("http_fetch and its test server leave no fds behind", "[plugins][http_fetch]") {
  // Warm up: curl and OpenSSL keep a few process-wide fds after their first use.
  {
    HttpTestServer server;
    run(make_processor("http_fetch", Config()), server.url("/hello"));
  }
  const int before = open_fd_count();
  {
    HttpTestServer server;
    auto p = make_processor("http_fetch", Config());
    for (const char* path : {"/hello", "/missing", "/bytes/100000", "/stream/10"}) {
      run(p, server.url(path));
    }
    Attempt attempt(100ms);
    run(p, server.url("/slow/2000"), attempt);
  }
  CHECK(open_fd_count() == before);
}

TEST_CASE("http_fetch refuses a bad config", "[plugins][http_fetch]") {
  SECTION("a misspelt key") {
    CHECK(config_error("http_fetch", Config().set("user_agnet", "x")) ==
          "unknown key 'user_agnet' (did you mean 'user_agent'?)");
  }
  SECTION("max_bytes that is not a size") {
    CHECK_THAT(config_error("http_fetch", Config().set("max_bytes", "big")),
               Catch::Contains("expected a size"));
  }
  SECTION("a relative save_dir") {
    CHECK_THAT(config_error("http_fetch", Config().set("save_dir", "bodies")),
               Catch::StartsWith("must be an absolute path"));
  }
  SECTION("a save_dir that does not exist") {
    TempDir dir;
    CHECK_THAT(config_error("http_fetch", Config().set("save_dir", (dir / "nope").string())),
               Catch::StartsWith("cannot open folder"));
  }
  SECTION("user_agent that is not a string") {
    CHECK_THAT(config_error("http_fetch", Config().map("user_agent")),
               Catch::Contains("expected a string"));
  }
}

}  // namespace
}  // namespace barista::bundled_plugins_test
