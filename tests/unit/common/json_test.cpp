#include "daemon/common/json.hpp"

#include <simdjson.h>
#include <catch2/catch.hpp>

using barista::common::append_json_string;

namespace {
std::string quoted(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}
// Parses a JSON string literal back; fails the test if it is not valid JSON.
std::string round_trip(std::string_view s) {
  simdjson::dom::parser parser;
  std::string_view out;
  auto json = quoted(s);
  REQUIRE(parser.parse(json).get_string().get(out) == simdjson::SUCCESS);
  return std::string(out);
}
}  // namespace

TEST_CASE("plain text is copied as is", "[json]") {
  CHECK(quoted("hello world") == "\"hello world\"");
  CHECK(quoted("") == "\"\"");
}

TEST_CASE("quotes, backslashes and control characters are escaped", "[json]") {
  CHECK(quoted("a\"b\\c") == R"("a\"b\\c")");
  CHECK(quoted("l1\nl2\r\t") == R"("l1\nl2\r\t")");
  CHECK(quoted(std::string_view("\0\x01\x1f\x7f", 4)) == R"("\u0000\u0001\u001f\u007f")");
  CHECK(round_trip(std::string_view("nul\0byte", 8)) == std::string("nul\0byte", 8));
}

TEST_CASE("valid UTF-8 is kept, invalid UTF-8 becomes U+FFFD", "[json]") {
  CHECK(round_trip("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") ==
        "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  CHECK(round_trip("bad \xFF byte") == "bad \xEF\xBF\xBD byte");
  CHECK(round_trip("truncated \xE2\x82") == "truncated \xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(round_trip("overlong \xC0\xAF") == "overlong \xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(round_trip("surrogate \xED\xA0\x80") == "surrogate \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("any byte string yields valid JSON", "[json]") {
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all += static_cast<char>(i);
  }
  (void)round_trip(all);
}
