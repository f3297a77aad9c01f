#include "daemon/batch/spool.hpp"

#include "tests/unit/temp_dir.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <fmt/format.h>

using barista::batch::Batch;
using barista::batch::InputFormat;
using barista::batch::JobStatus;
using barista::batch::PoolSpool;
using barista::testing::slurp;
using barista::testing::TempDir;
namespace fs = std::filesystem;

TEST_CASE("ensure creates the four folders", "[batch][spool]") {
  TempDir dir;
  PoolSpool spool(dir.path(), "p");
  spool.ensure();
  for (const char* sub : {"inbox", "active", "done", "failed"}) {
    CHECK(fs::is_directory(dir.path() / "p" / sub));
  }
}

TEST_CASE("claim moves the file into active/ID/input.EXT", "[batch][spool]") {
  TempDir dir;
  PoolSpool spool(dir.path(), "p");
  spool.ensure();
  dir.write("p/inbox/report.2026.jsonl", "{}\n");
  auto info = spool.claim("report.2026.jsonl", true);
  REQUIRE(info);
  CHECK(info->id == "report.2026");
  CHECK(info->input_name == "input.jsonl");
  CHECK(info->format == InputFormat::kJsonl);
  CHECK(info->cancel_all);
  CHECK(fs::exists(spool.active() / "report.2026" / "input.jsonl"));
  CHECK(fs::exists(spool.active() / "report.2026" / "batch.json"));
  CHECK_FALSE(fs::exists(spool.inbox() / "report.2026.jsonl"));
}

TEST_CASE("a submission's temp file is claimed straight into active/, named as submitted",
          "[batch][spool]") {
  TempDir dir;
  PoolSpool spool(dir.path(), "p");
  spool.ensure();
  const auto tmp = spool.submission_temp();
  CHECK(tmp.parent_path() == spool.inbox());
  CHECK(tmp.filename().string().starts_with(".submit-" + std::to_string(::getpid()) + "-"));
  dir.write(fs::relative(tmp, dir.path()).string(), "a\nb\n");
  fs::create_directories(spool.done() / "orders");
  const auto info = spool.claim(tmp, "orders.txt", false);
  REQUIRE(info);
  CHECK(info->id == "orders-2");
  CHECK(info->input_name == "input.txt");
  CHECK(info->format == InputFormat::kText);
  CHECK(slurp(spool.active() / "orders-2" / "input.txt") == "a\nb\n");
  CHECK(fs::is_empty(spool.inbox()));
  // Undone, the input goes back where it came from.
  spool.unclaim(*info, tmp);
  CHECK(fs::exists(tmp));
  CHECK_FALSE(fs::exists(spool.active() / "orders-2"));
}

TEST_CASE("the temp files of uploads cut short by a daemon that is gone are removed",
          "[batch][spool]") {
  TempDir dir;
  PoolSpool spool(dir.path(), "p");
  spool.ensure();
  // A process that has exited and been reaped: its pid names no process now.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::_exit(0);
  }
  REQUIRE(::waitpid(child, nullptr, 0) == child);
  const auto dead = fmt::format("p/inbox/.submit-{}-1f.tmp", child);
  const auto mine = fmt::format("p/inbox/.submit-{}-2e.tmp", ::getpid());
  dir.write(dead, "half a batch");
  dir.write(mine, "arriving");
  dir.write("p/inbox/.submit-notes.tmp", "a user's own dot-file");
  dir.write("p/inbox/.submit-1-3d.txt", "not a temp file");
  CHECK(spool.remove_abandoned_submissions() == 1);
  CHECK_FALSE(fs::exists(dir.path() / dead));
  CHECK(fs::exists(dir.path() / mine));
  CHECK(fs::exists(spool.inbox() / ".submit-notes.tmp"));
  CHECK(fs::exists(spool.inbox() / ".submit-1-3d.txt"));
}

TEST_CASE("a used id gets -2, -3, ... whether active, done or failed", "[batch][spool]") {
  TempDir dir;
  PoolSpool spool(dir.path(), "p");
  spool.ensure();
  fs::create_directories(spool.done() / "b");
  fs::create_directories(spool.failed() / "b-2");
  dir.write("p/inbox/b.txt", "x\n");
  auto first = spool.claim("b.txt", false);
  REQUIRE(first);
  CHECK(first->id == "b-3");
  dir.write("p/inbox/b", "x\n");
  auto second = spool.claim("b", false);
  REQUIRE(second);
  CHECK(second->id == "b-4");
  CHECK(second->input_name == "input");
}

TEST_CASE("a name submitted again and again gets the next suffix without a look at each",
          "[batch][spool]") {
  TempDir dir;
  PoolSpool spool(dir.path(), "p");
  spool.ensure();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    dir.write("p/inbox/same.txt", "x\n");
    const auto info = spool.claim("same.txt", false);
    REQUIRE(info);
    ids.push_back(info->id);
    // Finished batches move on to done/ (or failed/): their ids stay taken.
    fs::rename(spool.active() / info->id, (i % 2 == 0 ? spool.done() : spool.failed()) / info->id);
  }
  CHECK(ids == std::vector<std::string>{"same", "same-2", "same-3", "same-4", "same-5"});
  // A folder made behind the daemon's back is still seen: ids are never reused.
  fs::create_directories(spool.done() / "same-6");
  dir.write("p/inbox/same.txt", "x\n");
  const auto next = spool.claim("same.txt", false);
  REQUIRE(next);
  CHECK(next->id == "same-7");
  // A batch whose claim was undone gives its id back.
  spool.unclaim(*next, spool.inbox() / "same.txt");
  const auto again = spool.claim("same.txt", false);
  REQUIRE(again);
  CHECK(again->id == "same-7");
}

TEST_CASE("dot-files, folders, symlinks, FIFOs and vanished names are not claimed",
          "[batch][spool]") {
  TempDir dir;
  PoolSpool spool(dir.path(), "p");
  spool.ensure();
  dir.write("p/inbox/.partial.tmp", "x\n");
  fs::create_directory(spool.inbox() / "folder");
  dir.write("outside.txt", "secret\n");
  fs::create_symlink(dir.path() / "outside.txt", spool.inbox() / "link.txt");
  REQUIRE(::mkfifo((spool.inbox() / "pipe").c_str(), 0600) == 0);
  CHECK_FALSE(spool.claim(".partial.tmp", false));
  CHECK_FALSE(spool.claim("folder", false));
  CHECK_FALSE(spool.claim("link.txt", false));
  CHECK_FALSE(spool.claim("pipe", false));
  CHECK_FALSE(spool.claim("gone.txt", false));
  CHECK(fs::is_empty(spool.active()));
  CHECK(slurp(dir.path() / "outside.txt") == "secret\n");
}

TEST_CASE("recover resumes unfinished batches with the results they have", "[batch][spool]") {
  TempDir dir;
  PoolSpool spool(dir.path(), "p");
  spool.ensure();
  dir.write("p/inbox/r.txt", "a\nb\nc\n");
  auto info = spool.claim("r.txt", true);
  REQUIRE(info);
  {
    Batch b(*info);
    b.record("1", JobStatus::kOk, 1, 1, "a");
    b.record("2", JobStatus::kFailed, 1, 1, "broke");
    b.flush(true);
  }
  // a crash in the middle of writing the third result
  {
    std::ofstream torn(spool.active() / "r" / "results.jsonl", std::ios::app);
    torn << R"({"id":"3","sta)";
  }
  auto recovered = spool.recover(true);
  REQUIRE(recovered.size() == 1);
  const auto& r = recovered.front();
  CHECK(r.info.id == "r");
  CHECK(r.info.input_name == "input.txt");
  CHECK(r.state.counts.ok == 1);
  CHECK(r.state.counts.failed == 1);
  REQUIRE(r.state.first_error);
  CHECK(r.state.first_error->id == "2");
  CHECK(r.state.cancelled);  // cancel_all and a failure on record
  CHECK(r.recorded.at("1") == 1);
  CHECK(r.recorded.at("2") == 1);
  CHECK(r.recorded.count("3") == 0);
  // the torn line is gone from the file
  auto text = slurp(spool.active() / "r" / "results.jsonl");
  CHECK(text.back() == '\n');
  CHECK(text.find(R"("id":"3")") == std::string::npos);
  // started survives the restart
  CHECK(std::chrono::duration_cast<std::chrono::seconds>(r.info.started - info->started).count() ==
        0);
}

TEST_CASE("recover finishes a move that a crash interrupted, and drops empty claims",
          "[batch][spool]") {
  TempDir dir;
  PoolSpool spool(dir.path(), "p");
  spool.ensure();
  dir.write("p/active/x/input.txt", "a\n");
  dir.write("p/active/x/summary.json", R"({"state":"cancelled"})");
  fs::create_directories(spool.active() / "empty");
  CHECK(spool.recover(false).empty());
  CHECK(fs::exists(spool.failed() / "x" / "summary.json"));
  CHECK_FALSE(fs::exists(spool.active() / "empty"));
}
