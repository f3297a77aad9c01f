#include "daemon/common/fs.hpp"

#include "tests/unit/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

using barista::common::DurableWrite;
using barista::common::read_file;
using barista::common::write_file_durably;

namespace {
// What a folder holds, names only, sorted.
std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

TEST_CASE("a durable write shows its file only once it is committed", "[fs]") {
  barista::testing::TempDir dir;
  const auto file = dir / "summary.json";
  SECTION("a new file") {
    DurableWrite write(file, "{\"state\":\"done\"}\n");
    CHECK_FALSE(std::filesystem::exists(file));  // only the temp file exists until commit()
    CHECK(names_in(dir.path()).size() == 1);
    write.commit();
    CHECK(read_file(file) == "{\"state\":\"done\"}\n");
    CHECK(names_in(dir.path()) == std::vector<std::string>{"summary.json"});
  }
  SECTION("over an old one, which stays whole until then") {
    write_file_durably(file, "old\n");
    DurableWrite write(file, "new\n");
    CHECK(read_file(file) == "old\n");
    write.commit();
    CHECK(read_file(file) == "new\n");
    CHECK(names_in(dir.path()) == std::vector<std::string>{"summary.json"});
  }
}

TEST_CASE("a durable write given up leaves nothing behind", "[fs]") {
  barista::testing::TempDir dir;
  const auto file = dir / "summary.json";
  SECTION("no file before") {
    { DurableWrite write(file, "never committed\n"); }
    CHECK(names_in(dir.path()).empty());
  }
  SECTION("an old file before, kept as it was") {
    write_file_durably(file, "old\n");
    { DurableWrite write(file, "never committed\n"); }
    CHECK(read_file(file) == "old\n");
    CHECK(names_in(dir.path()) == std::vector<std::string>{"summary.json"});
  }
}

TEST_CASE("a durable write into a missing folder throws and creates nothing", "[fs]") {
  barista::testing::TempDir dir;
  CHECK_THROWS_AS(DurableWrite(dir / "missing" / "summary.json", "x"), std::system_error);
  CHECK(names_in(dir.path()).empty());
}
