// What the inbox takes as a batch and how batches are named (docs/reference.md#batch-life,
// #batch-ids).

#include "tests/integration/core/core_support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

namespace barista::itest {
namespace {

namespace fs = std::filesystem;

TEST_CASE("inbox: batch ids, dot-files, directories and symlinks", "[integration][inbox]") {
  Daemon d("  names:\n    plugin: echo\n");
  // A batch already waiting in the inbox when the daemon starts is taken too.
  fs::create_directories(d.inbox("names"));
  write_file(d.inbox("names") / "early.txt", "early\n");
  d.start();
  const auto early = d.wait_batch("names", "early", seconds(10));
  CHECK(early.summary.ok == 1);

  // Dot-files are not batches: that is how a batch is written before its rename.
  write_file(d.inbox("names") / ".hidden.tmp", "hidden\n");

  // The id is the name without its last extension.
  d.drop("names", "my.batch.txt", "x\n");
  d.drop("names", "archive.tar.gz", "x\n");
  d.drop("names", "noext", "x\n");
  CHECK(d.wait_batch("names", "my.batch").folder == "done");
  CHECK(fs::exists(d.pool_dir("names") / "done" / "my.batch" / "input.txt"));
  CHECK(d.wait_batch("names", "archive.tar").folder == "done");
  CHECK(fs::exists(d.pool_dir("names") / "done" / "archive.tar" / "input.gz"));
  CHECK(d.wait_batch("names", "noext").folder == "done");

  // A name already used in the pool gets -2, -3, ...
  d.drop("names", "b.txt", "one\n");
  const auto b1 = d.wait_batch("names", "b");
  d.drop("names", "b.txt", "two\n");
  const auto b2 = d.wait_batch("names", "b-2");
  d.drop("names", "b.txt", "three\n");
  const auto b3 = d.wait_batch("names", "b-3");
  REQUIRE(b1.results.size() == 1);
  REQUIRE(b2.results.size() == 1);
  REQUIRE(b3.results.size() == 1);
  CHECK(b1.results[0].output == "one");
  CHECK(b2.results[0].output == "two");
  CHECK(b3.results[0].output == "three");
  CHECK(b2.summary.batch == "b-2");

  // A directory and a symlink moved into the inbox: ignored, logged, no crash.
  fs::create_directory(d.root() / "dir.txt");
  write_file(d.root() / "dir.txt" / "inside.txt", "inside\n");
  fs::rename(d.root() / "dir.txt", d.inbox("names") / "dir.txt");
  write_file(d.root() / "target.txt", "target\n");
  fs::create_symlink(d.root() / "target.txt", d.root() / "link.txt");
  fs::rename(d.root() / "link.txt", d.inbox("names") / "link.txt");
  CHECK(d.wait_until(
      [&] {
        return !log_line_with(d.log(), {"dir.txt", "ignored"}).empty();
      },
      seconds(5)));
  CHECK(d.wait_until(
      [&] {
        return !log_line_with(d.log(), {"link.txt", "ignored"}).empty();
      },
      seconds(5)));

  // The daemon still takes batches; none of the ignored entries became one.
  d.drop("names", "after.txt", "after\n");
  CHECK(d.wait_batch("names", "after").summary.ok == 1);
  CHECK(fs::exists(d.inbox("names") / ".hidden.tmp"));
  CHECK(fs::is_directory(d.inbox("names") / "dir.txt"));
  CHECK(fs::is_symlink(d.inbox("names") / "link.txt"));
  CHECK(slurp(d.root() / "target.txt") == "target\n");
  for (const char* folder : {"active", "done", "failed"}) {
    for (const char* id : {".hidden", "hidden", "dir", "link", ".hidden.tmp"}) {
      INFO(folder << "/" << id);
      CHECK_FALSE(fs::exists(d.pool_dir("names") / folder / id));
    }
  }
}

}  // namespace
}  // namespace barista::itest
