#include "daemon/batch/line_reader.hpp"

#include "tests/unit/temp_dir.hpp"

#include <fcntl.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using barista::batch::Line;
using barista::batch::LineReader;
using barista::testing::TempDir;

namespace {
struct Seen {
  std::uint64_t number;
  std::string text;
  std::uint64_t length;
  bool oversize;
};

std::vector<Seen> read_all(const std::filesystem::path& file, std::uint64_t max_line) {
  LineReader reader(::open(file.c_str(), O_RDONLY), max_line, 64);
  std::vector<Seen> out;
  Line line;
  while (reader.next(line)) {
    out.push_back({line.number, std::string(line.text), line.length, line.oversize});
  }
  return out;
}
}  // namespace

TEST_CASE("lines keep their physical numbers, without \\n or \\r\\n", "[batch][line_reader]") {
  TempDir dir;
  auto lines = read_all(dir.write("a.txt", "one\r\ntwo\n\nfour"), 100);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].text == "one");
  CHECK(lines[1].text == "two");
  CHECK(lines[2].text.empty());
  CHECK(lines[2].number == 3);
  CHECK(lines[3].text == "four");  // no final newline: still a line
  CHECK(lines[3].number == 4);
}

TEST_CASE("an empty file has no lines", "[batch][line_reader]") {
  TempDir dir;
  CHECK(read_all(dir.write("e.txt", ""), 100).empty());
}

TEST_CASE("lines over the limit are reported as oversize, with their length",
          "[batch][line_reader]") {
  TempDir dir;
  const std::string big(10'000, 'x');
  auto lines = read_all(dir.write("b.txt", "ok\n" + big + "\r\nafter\n" + big), 100);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].text == "ok");
  CHECK(lines[1].oversize);
  CHECK(lines[1].length == 10'000);
  CHECK(lines[1].text.empty());
  CHECK(lines[2].text == "after");
  CHECK(lines[2].number == 3);
  CHECK(lines[3].oversize);
  CHECK(lines[3].number == 4);
}

TEST_CASE("a line exactly at the limit is kept", "[batch][line_reader]") {
  TempDir dir;
  const std::string exact(100, 'y');
  auto lines = read_all(dir.write("c.txt", exact + "\n" + exact + "z\n"), 100);
  REQUIRE(lines.size() == 2);
  CHECK_FALSE(lines[0].oversize);
  CHECK(lines[0].text == exact);
  CHECK(lines[1].oversize);
  CHECK(lines[1].length == 101);
}

TEST_CASE("many lines across read blocks come out whole and in order", "[batch][line_reader]") {
  TempDir dir;
  std::string content;
  for (int i = 1; i <= 200'000; ++i) {
    content += "payload-" + std::to_string(i) + "\n";
  }
  auto lines = read_all(dir.write("d.txt", content), 1 << 20);
  REQUIRE(lines.size() == 200'000);
  for (std::size_t i = 0; i < lines.size(); i += 997) {
    CHECK(lines[i].text == "payload-" + std::to_string(i + 1));
  }
  CHECK(lines.back().text == "payload-200000");
}
