#include "daemon/batch/job_parser.hpp"

#include <catch2/catch.hpp>

#include <string>

using barista::batch::format_for;
using barista::batch::InputFormat;
using barista::batch::JobParser;
using barista::batch::Line;

namespace {
// simdjson reads past the end of the text: keep the line in a padded buffer, as LineReader does.
struct PaddedLine {
  explicit PaddedLine(std::string_view text, std::uint64_t number = 1)
      : storage(std::string(text) + std::string(simdjson::SIMDJSON_PADDING, '\0')) {
    line.number = number;
    line.text = std::string_view(storage.data(), text.size());
    line.length = text.size();
  }
  std::string storage;
  Line line;
};
}  // namespace

TEST_CASE("the format comes from the file name", "[batch][parser]") {
  CHECK(format_for("a.jsonl") == InputFormat::kJsonl);
  CHECK(format_for("a.txt") == InputFormat::kText);
  CHECK(format_for("a.json") == InputFormat::kText);
  CHECK(format_for("jsonl") == InputFormat::kText);
  CHECK(format_for(".jsonl") == InputFormat::kText);
}

TEST_CASE("text lines: payload is the line, id its number, blank lines are skipped",
          "[batch][parser]") {
  JobParser parser(InputFormat::kText, 100);
  PaddedLine l("hello", 7);
  auto job = parser.parse(l.line);
  CHECK(job.valid);
  CHECK(job.id == "7");
  CHECK(job.payload == "hello");
  PaddedLine blank("", 8);
  CHECK(parser.parse(blank.line).skip);
}

TEST_CASE("oversize lines are invalid with their size", "[batch][parser]") {
  JobParser parser(InputFormat::kText, 10);
  Line line;
  line.number = 3;
  line.length = 5000;
  line.oversize = true;
  auto job = parser.parse(line);
  CHECK_FALSE(job.valid);
  CHECK(job.id == "3");
  CHECK(job.error == "line of 5000 bytes exceeds max_job_bytes (10)");
}

TEST_CASE("JSONL: ids, payloads and errors", "[batch][parser]") {
  JobParser parser(InputFormat::kJsonl, 1000);
  auto parse = [&](std::string_view text, std::uint64_t number) {
    PaddedLine l(text, number);
    auto job = parser.parse(l.line);
    // copy out: the views die with the padded line
    return std::tuple(job.valid, std::string(job.id), std::string(job.payload), job.error);
  };

  SECTION("string id and string payload") {
    auto [valid, id, payload, error] = parse(R"({"id":"a-1","payload":"text \"q\""})", 1);
    CHECK(valid);
    CHECK(id == "a-1");
    CHECK(payload == "text \"q\"");
  }
  SECTION("numeric id is its text; absent id is the line number") {
    CHECK(std::get<1>(parse(R"({"id":17,"payload":"x"})", 1)) == "17");
    CHECK(std::get<1>(parse(R"({"payload":"x"})", 5)) == "5");
  }
  SECTION("a non-string payload is handed over as compact JSON") {
    auto [valid, id, payload, error] =
        parse(R"({"id":1, "payload": { "a" : [1, 2, {"b": null}] }})", 1);
    CHECK(valid);
    CHECK(payload == R"({"a":[1,2,{"b":null}]})");
  }
  SECTION("malformed JSON is invalid with the parse error, named by line number") {
    auto [valid, id, payload, error] = parse(R"({"id":1,"payload":)", 9);
    CHECK_FALSE(valid);
    CHECK(id == "9");
    CHECK(error.rfind("malformed JSON: ", 0) == 0);
  }
  SECTION("not an object, bad id type, missing payload") {
    CHECK(std::get<3>(parse("[1,2]", 1)) == "expected a JSON object with \"id\" and \"payload\"");
    CHECK(std::get<3>(parse(R"({"id":true,"payload":"x"})", 1)) ==
          "\"id\" must be a string or a number");
    CHECK(std::get<3>(parse(R"({"id":"z"})", 1)) == "missing \"payload\"");
  }
  SECTION("duplicate ids: the second is invalid") {
    CHECK(std::get<0>(parse(R"({"id":"d","payload":"1"})", 1)));
    auto [valid, id, payload, error] = parse(R"({"id":"d","payload":"2"})", 2);
    CHECK_FALSE(valid);
    CHECK(id == "d");
    CHECK(error == "duplicate id 'd' in the batch");
    // a line number id colliding with an explicit id is a duplicate too
    CHECK(std::get<0>(parse(R"({"id":"4","payload":"x"})", 3)));
    CHECK_FALSE(std::get<0>(parse(R"({"payload":"y"})", 4)));
  }
  SECTION("a payload over max_job_bytes is invalid") {
    std::string big(2000, 'p');
    auto [valid, id, payload, error] = parse(R"({"id":"big","payload":")" + big + "\"}", 1);
    CHECK_FALSE(valid);
    CHECK(error == "payload of 2000 bytes exceeds max_job_bytes (1000)");
  }
  SECTION("JSON nested 100,000 deep is refused, not a crash") {
    std::string deep =
        R"({"id":1,"payload":)" + std::string(100'000, '[') + std::string(100'000, ']') + "}";
    JobParser big(InputFormat::kJsonl, 1 << 20);
    PaddedLine l(deep, 1);
    auto job = big.parse(l.line);
    CHECK_FALSE(job.valid);
    CHECK(job.error.rfind("malformed JSON: ", 0) == 0);
  }
}

TEST_CASE("text ids are the line numbers, in order, across carries and after gaps",
          "[batch][parser]") {
  JobParser parser(InputFormat::kText, 100);
  const std::uint64_t numbers[] = {1,
                                   2,
                                   9,
                                   10,
                                   11,
                                   99,
                                   100,
                                   101,
                                   999,
                                   1000,
                                   1001,
                                   5,
                                   6,
                                   7,
                                   7,
                                   8,
                                   19,
                                   20,
                                   999'999,
                                   1'000'000,
                                   1'000'001,
                                   18'446'744'073'709'551'614ULL,
                                   18'446'744'073'709'551'615ULL};
  for (const auto n : numbers) {
    PaddedLine l("x", n);
    CHECK(std::string(parser.parse(l.line).id) == std::to_string(n));
  }
  // Every number from 1 to 100,000 in a row, as a long batch has them.
  for (std::uint64_t n = 1; n <= 100'000; ++n) {
    PaddedLine l("x", n);
    const auto id = parser.parse(l.line).id;
    if (id != std::to_string(n)) {
      FAIL("line " << n << " got id " << id);
    }
  }
}
