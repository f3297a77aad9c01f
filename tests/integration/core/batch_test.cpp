// Batches end to end (docs/reference.md#spool, #results): a big text batch with failures, and
// the JSONL format.

#include "tests/integration/core/core_support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace barista::itest {
namespace {

namespace fs = std::filesystem;

TEST_CASE("a 5,000-job text batch with failures gets one result per job and ends in done/",
          "[integration][batch]") {
  Daemon d(
      "  echo:\n"
      "    plugin: echo\n"
      "    workers: 4\n"
      "    on_error: continue\n"
      "    config:\n"
      "      fail_on: bad\n");
  d.start();
  constexpr int kJobs = 5000;
  const auto is_bad = [](int i) { return i % 100 == 0; };
  const std::string input = text_batch(
      kJobs, [&](int i) { return (is_bad(i) ? "bad line " : "line ") + std::to_string(i); });
  d.drop("echo", "big.txt", input);
  const auto end = d.wait_batch("echo", "big", seconds(60));

  CHECK(end.folder == "done");
  CHECK_FALSE(fs::exists(d.active("echo", "big")));
  CHECK(slurp(end.dir / "input.txt") == input);

  const Summary& s = end.summary;
  INFO(s.text);
  CHECK(s.batch == "big");
  CHECK(s.pool == "echo");
  CHECK(s.state == "done");
  CHECK(s.jobs == kJobs);
  CHECK(s.ok == 4950);
  CHECK(s.failed == 50);
  CHECK(s.timeout == 0);
  CHECK(s.cancelled == 0);
  CHECK(s.invalid == 0);
  CHECK(is_iso8601_utc(s.started));
  CHECK(is_iso8601_utc(s.finished));
  CHECK(s.started <= s.finished);
  CHECK(s.seconds >= 0.0);
  CHECK(s.seconds < 60.0);

  REQUIRE(end.results.size() == static_cast<std::size_t>(kJobs));
  std::set<std::string> seen;
  std::set<std::string> failing;
  Problems problems;
  for (const auto& r : end.results) {
    if (!r.id_is_string) {
      problems.add("id is not a JSON string: " + r.line);
    }
    if (!seen.insert(r.id).second) {
      problems.add("id twice: " + r.line);
    }
    int i = 0;
    try {
      i = std::stoi(r.id);
    } catch (const std::exception&) {
    }
    if (i < 1 || i > kJobs || std::to_string(i) != r.id) {
      problems.add("id is not a line number of the batch: " + r.line);
      continue;
    }
    if (r.attempts != 1) {
      problems.add("attempts is not 1: " + r.line);
    }
    if (is_bad(i)) {
      failing.insert(r.id);
      if (r.status != "failed" || r.error != "payload contains 'bad'" || r.output) {
        problems.add("expected failed with \"payload contains 'bad'\": " + r.line);
      }
    } else if (r.status != "ok" || r.output != "line " + r.id || r.error) {
      problems.add("expected ok with output \"line " + r.id + "\": " + r.line);
    }
  }
  INFO(problems.text());
  CHECK(problems.empty());
  CHECK(seen.size() == static_cast<std::size_t>(kJobs));
  CHECK(failing.size() == 50);

  // "First" is in completion order: any failing job may have been the first to fail.
  REQUIRE(s.has_first_error);
  CHECK(failing.count(s.first_error_id) == 1);
  CHECK(s.first_error == "payload contains 'bad'");
}

TEST_CASE("a JSONL batch: ids, payloads, blank lines and invalid lines", "[integration][jsonl]") {
  Daemon d(
      "  json:\n"
      "    plugin: echo\n"
      "    workers: 2\n"
      "    max_job_bytes: 64\n");
  d.start();

  const std::string oversize =
      R"({"id":"big","payload":")" + std::string(80, 'x') + R"("})";  // over 64 bytes
  const std::string input = std::string(R"({"id":"a","payload":"hello"})") + "\n" +    // 1
                            R"({"id":42,"payload":{"k":[1, 2], "s":"x y"}})" + "\n" +  // 2
                            R"({"payload":"no id here"})" + "\n" +                     // 3
                            "\n" +                                                     // 4
                            R"({"id":"a","payload":"again"})" + "\n" +                 // 5
                            R"({"id":"b","payload":)" + "\n" +                         // 6
                            oversize + "\n" +                                          // 7
                            R"({"id":-5,"payload":123})" + "\n" +                      // 8
                            R"([1,2,3])" + "\n" +                                      // 9
                            R"({"id":"c"})" + "\n" +                                   // 10
                            R"({"id":"d","payload":null})" + "\n" +                    // 11
                            R"({"id":"crlf","payload":"x"})" + "\r\n" +                // 12
                            R"({"id":"q","payload":"say \"hi\" \u00e9"})" + "\n";      // 13
  d.drop("json", "mixed.jsonl", input);
  const auto end = d.wait_batch("json", "mixed");
  CHECK(end.folder == "done");
  CHECK(fs::exists(end.dir / "input.jsonl"));

  std::multimap<std::string, JobResult> results;
  for (const auto& r : end.results) {
    INFO(r.line);
    CHECK(r.id_is_string);
    results.emplace(r.id, r);
  }
  const auto one = [&](const std::string& id) -> JobResult {
    INFO("id " << id);
    REQUIRE(results.count(id) == 1);
    return results.find(id)->second;
  };
  const auto ok_with = [&](const std::string& id, const std::string& output) {
    const auto r = one(id);
    INFO(r.line);
    CHECK(r.status == "ok");
    CHECK(r.output == output);
    CHECK_FALSE(r.error);
    CHECK(r.attempts == 1);
  };
  const auto invalid = [&](const JobResult& r, const std::string& error_part) {
    INFO(r.line);
    CHECK(r.status == "invalid");
    REQUIRE(r.error);
    CHECK_THAT(*r.error, Catch::Contains(error_part, Catch::CaseSensitive::No));
    CHECK(r.attempts == 0);
    CHECK_FALSE(r.output);
  };

  CHECK(end.results.size() == 12);            // 13 lines, one blank
  CHECK(results.count("4") == 0);             // the blank line is no job at all
  ok_with("42", R"({"k":[1,2],"s":"x y"})");  // an object payload as compact JSON
  ok_with("3", "no id here");                 // no id: the line number
  ok_with("-5", "123");
  ok_with("d", "null");
  ok_with("crlf", "x");
  ok_with("q", "say \"hi\" \xc3\xa9");

  // The first "a" runs; the second is a duplicate.
  REQUIRE(results.count("a") == 2);
  std::vector<JobResult> as;
  for (auto [it, last] = results.equal_range("a"); it != last; ++it) {
    as.push_back(it->second);
  }
  if (as[0].status != "ok") {
    std::swap(as[0], as[1]);
  }
  CHECK(as[0].status == "ok");
  CHECK(as[0].output == "hello");
  invalid(as[1], "duplicate");

  invalid(one("6"), "JSON");  // malformed: named by its line number, parse error in `error`
  CHECK(one("6").error->size() > std::string("malformed JSON").size());
  invalid(one("7"), "max_job_bytes");  // too long: named by its line number
  invalid(one("9"), "object");
  invalid(one("c"), "payload");

  const Summary& s = end.summary;
  INFO(s.text);
  CHECK(s.state == "done");
  CHECK(s.jobs == 12);
  CHECK(s.ok == 7);
  CHECK(s.invalid == 5);
  CHECK(s.failed == 0);
  CHECK(s.timeout == 0);
  CHECK(s.cancelled == 0);
  // Invalid lines are found in file order: the duplicate on line 5 is the first failure.
  REQUIRE(s.has_first_error);
  CHECK(s.first_error_id == "a");
  CHECK_THAT(s.first_error, Catch::Contains("duplicate"));
}

TEST_CASE("a text batch: CRLF line ends are cut, blank lines skipped, ids are line numbers",
          "[integration][text]") {
  Daemon d(
      "  text:\n"
      "    plugin: echo\n");
  d.start();
  d.drop("text", "lines.log", "first\r\n\r\nthird\n\nfifth");  // no newline at the end
  const auto end = d.wait_batch("text", "lines");
  CHECK(end.folder == "done");
  CHECK(fs::exists(end.dir / "input.log"));
  const auto results = by_id(end.results);
  REQUIRE(results.size() == 3);
  REQUIRE(results.count("1") == 1);
  REQUIRE(results.count("3") == 1);
  REQUIRE(results.count("5") == 1);
  CHECK(results.at("1").output == "first");
  CHECK(results.at("3").output == "third");
  CHECK(results.at("5").output == "fifth");
  CHECK(end.summary.jobs == 3);
  CHECK(end.summary.ok == 3);
  CHECK_FALSE(end.summary.has_first_error);
}

TEST_CASE("an empty batch ends at once in done/ with 0 jobs", "[integration][text]") {
  Daemon d("  echo:\n    plugin: echo\n");
  d.start();
  d.drop("echo", "empty.txt", "");
  d.drop("echo", "blank.txt", "\n\r\n\n");
  for (const char* id : {"empty", "blank"}) {
    const auto end = d.wait_batch("echo", id, seconds(10));
    INFO(id << ": " << end.summary.text);
    CHECK(end.folder == "done");
    CHECK(end.summary.state == "done");
    CHECK(end.summary.jobs == 0);
    CHECK_FALSE(end.summary.has_first_error);
    CHECK(end.results.empty());
  }
}

TEST_CASE("payloads that are not valid UTF-8 still give valid JSON results",
          "[integration][text]") {
  Daemon d("  echo:\n    plugin: echo\n");
  d.start();
  d.drop("echo", "bytes.txt", "ok \xff\xfe bytes\ntab\there \x01 \"q\" \\\n");
  const auto end = d.wait_batch("echo", "bytes");  // the harness parses every line as JSON
  const auto results = by_id(end.results);
  REQUIRE(results.size() == 2);
  REQUIRE(results.at("1").output);
  CHECK_THAT(*results.at("1").output, Catch::StartsWith("ok ") && Catch::EndsWith(" bytes"));
  CHECK_THAT(*results.at("1").output, Catch::Contains("\xef\xbf\xbd"));  // U+FFFD
  CHECK(results.at("2").output == "tab\there \x01 \"q\" \\");
}

TEST_CASE("a text line over max_job_bytes is invalid and the lines after it are intact",
          "[integration][text]") {
  Daemon d(
      "  short:\n"
      "    plugin: echo\n"
      "    max_job_bytes: 16\n");
  d.start();
  // Line 2 is far longer than the limit (and than any read buffer of a few KiB).
  d.drop("short", "s.txt", "before\n" + std::string(100'000, 'y') + "\nafter\nexactly-16-bytes\n");
  const auto end = d.wait_batch("short", "s");
  const auto results = by_id(end.results);
  REQUIRE(results.size() == 4);
  CHECK(results.at("1").output == "before");
  const auto& big = results.at("2");
  INFO(big.line.substr(0, 300));
  CHECK(big.status == "invalid");
  CHECK(big.attempts == 0);
  REQUIRE(big.error);
  CHECK_THAT(*big.error, Catch::Contains("max_job_bytes"));
  CHECK(results.at("3").output == "after");
  CHECK(results.at("4").status == "ok");
  CHECK(results.at("4").output == "exactly-16-bytes");
  CHECK(end.summary.invalid == 1);
  CHECK(end.summary.ok == 3);
}

}  // namespace
}  // namespace barista::itest
