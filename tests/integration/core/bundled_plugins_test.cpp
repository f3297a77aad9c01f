// The bundled plugins run by the real daemon (docs/plugins.md): what a user gets in
// results.jsonl from shell, sha256 and http_fetch.

#include "tests/integration/core/core_support.hpp"
#include "tests/integration/harness/http_server.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace barista::itest {
namespace {

namespace fs = std::filesystem;

constexpr const char* kAbcSha256 =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST_CASE("shell: stdout is the output, a non-zero exit fails with stderr, the deadline kills",
          "[integration][bundled][shell]") {
  Daemon d(
      "  shell:\n"
      "    plugin: shell\n"
      "    workers: 3\n"
      "    timeout: 500ms\n"
      "    config:\n"
      "      command:\n"
      "        - /bin/sh\n"
      "        - -c\n"
      "        - 'case \"$1\" in fail) echo \"bad thing\" >&2; exit 3;; sleep) sleep 10;;"
      " *) printf \"%s\" \"$1\" | tr a-z A-Z;; esac'\n"
      "        - sh\n"
      "        - '{}'\n"
      "  upper:\n"
      "    plugin: shell\n"
      "    config:\n"
      "      command: [/usr/bin/tr, a-z, A-Z]\n"
      "      stdin: true\n");
  d.start();
  d.drop("shell", "s.txt", "hello\nfail\nsleep\n");
  d.drop("upper", "u.txt", "abc\n");

  const auto end = d.wait_batch("shell", "s", seconds(10));
  const auto results = by_id(end.results);
  REQUIRE(results.size() == 3);
  {
    const auto& r = results.at("1");
    INFO(r.line);
    CHECK(r.status == "ok");
    CHECK(r.output == "HELLO");  // the payload replaced `{}`
  }
  {
    const auto& r = results.at("2");
    INFO(r.line);
    CHECK(r.status == "failed");
    REQUIRE(r.error);
    CHECK_THAT(*r.error, Catch::Contains("bad thing"));
  }
  {
    // `sleep 10` runs in a child of sh: only killing the process group ends it at the deadline,
    // well before the worker would be abandoned (deadline + 1 s).
    const auto& r = results.at("3");
    INFO(r.line);
    CHECK(r.status == "timeout");
    CHECK(r.ms < 1300.0);
  }
  const auto upper = d.wait_batch("upper", "u");
  REQUIRE(upper.results.size() == 1);
  INFO(upper.results[0].line);
  CHECK(upper.results[0].status == "ok");
  CHECK(upper.results[0].output == "ABC");  // the payload went to stdin
}

TEST_CASE("sha256: digests of the payload and of files beneath root",
          "[integration][bundled][sha256]") {
  Daemon d("");
  fs::create_directories(d.root() / "files");
  write_file(d.root() / "files" / "f.txt", "abc");
  write_file(d.root() / "outside.txt", "abc");
  d.set_pools(
      "  digest:\n"
      "    plugin: sha256\n"
      "    config:\n"
      "      input: payload\n"
      "  files:\n"
      "    plugin: sha256\n"
      "    config:\n"
      "      root: \"" +
      (d.root() / "files").string() + "\"\n");
  d.start();
  d.drop("digest", "d.txt", "abc\n");
  d.drop("files", "f.txt", "f.txt\n../outside.txt\nmissing.txt\n");

  const auto digest = d.wait_batch("digest", "d");
  REQUIRE(digest.results.size() == 1);
  CHECK(digest.results[0].output == kAbcSha256);

  const auto files = d.wait_batch("files", "f");
  const auto results = by_id(files.results);
  REQUIRE(results.size() == 3);
  CHECK(results.at("1").status == "ok");
  CHECK(results.at("1").output == kAbcSha256);
  for (const char* id : {"2", "3"}) {  // outside root; missing
    const auto& r = results.at(id);
    INFO(r.line);
    CHECK(r.status == "failed");
    CHECK(r.error);
  }
}

TEST_CASE("http_fetch: status and size as output, 5xx retried, other 4xx fatal, bodies saved",
          "[integration][bundled][http_fetch]") {
  HttpServer http({{"/ok", {200, "hello"}}, {"/busy", {503, "later"}}});
  Daemon d("");
  fs::create_directories(d.root() / "saved");
  d.set_pools(
      "  fetch:\n"
      "    plugin: http_fetch\n"
      "    retries: 2\n"
      "    backoff: 10ms\n"
      "    timeout: 5s\n"
      "    config:\n"
      "      save_dir: \"" +
      (d.root() / "saved").string() + "\"\n");
  d.start();
  d.drop("fetch", "h.txt",
         http.url("/ok") + "\n" + http.url("/missing") + "\n" + http.url("/busy") + "\n");
  const auto end = d.wait_batch("fetch", "h", seconds(20));
  const auto results = by_id(end.results);
  REQUIRE(results.size() == 3);
  {
    const auto& r = results.at("1");
    INFO(r.line);
    CHECK(r.status == "ok");
    CHECK(r.output == R"({"status":200,"bytes":5})");
    CHECK(r.attempts == 1);
  }
  {
    const auto& r = results.at("2");  // 404: fatal, not retried
    INFO(r.line);
    CHECK(r.status == "failed");
    CHECK(r.attempts == 1);
    REQUIRE(r.error);
    CHECK_THAT(*r.error, Catch::Contains("404"));
  }
  {
    const auto& r = results.at("3");  // 503: retried
    INFO(r.line);
    CHECK(r.status == "failed");
    CHECK(r.attempts == 3);
    REQUIRE(r.error);
    CHECK_THAT(*r.error, Catch::Contains("503"));
  }
  CHECK(http.hits("/missing") == 1);
  CHECK(http.hits("/busy") == 3);
  // The body of the successful fetch is saved in save_dir.
  int saved_hello = 0;
  for (const auto& entry : fs::directory_iterator(d.root() / "saved")) {
    saved_hello += entry.is_regular_file() && slurp(entry.path()) == "hello" ? 1 : 0;
  }
  CHECK(saved_hello == 1);
}

// Several sites (servers on their own ports: keys 127.0.0.1:PORT under `key: url_host`), each
// counting the requests it answers at once; one answers 429 with Retry-After: 1 at first.
TEST_CASE("http_fetch with key: url_host: per_key holds at each site, a 429 holds only its site",
          "[integration][bundled][http_fetch][keys]") {
  std::vector<std::unique_ptr<HttpServer>> sites;
  for (int i = 0; i < 3; ++i) {
    sites.push_back(std::make_unique<HttpServer>(
        std::map<std::string, HttpServer::Response>{{"/page", {200, "page", 40}}}));
  }
  HttpServer limited({{"/page", {200, "page", 0, 3, 429, "Retry-After: 1\r\n"}}});
  Daemon d("");
  d.set_pools(
      "  scrape:\n"
      "    plugin: http_fetch\n"
      "    workers: 8\n"
      "    key: url_host\n"
      "    per_key: {max_in_flight: 2}\n"
      "    timeout: 5s\n");
  d.start();
  std::string urls;
  for (int n = 0; n < 15; ++n) {
    for (const auto& site : sites) {
      urls += site->url("/page") + "\n";
    }
    if (n < 3) {
      urls += limited.url("/page") + "\n";
    }
  }
  d.drop("scrape", "sites.txt", urls);
  const auto end = d.wait_batch("scrape", "sites", seconds(30));
  REQUIRE(end.results.size() == 48);
  std::int64_t throttled = 0;
  for (const auto& r : end.results) {
    INFO(r.line);
    CHECK(r.status == "ok");  // retries is 0: the throttles spent none
    throttled += r.throttled;
  }
  CHECK(throttled == 3);
  CHECK(limited.hits("/page") == 6);
  for (const auto& site : sites) {
    CHECK(site->hits("/page") == 15);
    CHECK(site->most_in_flight() == 2);  // per_key.max_in_flight, and no fewer at a time
  }
  // The throttled site waited a second each time; the others did not wait for it: the batch
  // took about its three Retry-After seconds, not more.
  CHECK(end.summary.seconds >= 2.0);
  CHECK(end.summary.seconds < 8.0);
}

}  // namespace
}  // namespace barista::itest
