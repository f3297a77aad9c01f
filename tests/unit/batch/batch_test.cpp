#include "daemon/batch/batch.hpp"

#include "tests/unit/temp_dir.hpp"

#include <simdjson.h>
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>
#include <set>
#include <thread>
#include <vector>

using barista::batch::Batch;
using barista::batch::JobStatus;
using barista::testing::slurp;
using barista::testing::TempDir;

namespace {
Batch::Info make_info(const TempDir& dir, bool cancel_all) {
  Batch::Info info;
  info.id = "b1";
  info.pool = "p";
  info.pool_dir = dir.path() / "p";
  info.input_name = "input.txt";
  info.started = std::chrono::system_clock::now();
  info.cancel_all = cancel_all;
  for (const char* sub : {"active/b1", "done", "failed"}) {
    std::filesystem::create_directories(info.pool_dir / sub);
  }
  return info;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}
}  // namespace

TEST_CASE("result lines carry the documented keys", "[batch][ledger]") {
  TempDir dir;
  auto info = make_info(dir, false);
  Batch b(info);
  b.record("1", JobStatus::kOk, 1, 12.5, "out \"put\"");
  b.record("2", JobStatus::kFailed, 3, 1.0, "boom");
  b.record("3", JobStatus::kOk, 1, 0.25, "");
  b.flush(true);
  auto lines = lines_of(slurp(b.dir() / "results.jsonl"));
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == R"({"id":"1","status":"ok","attempts":1,"ms":12.500,"output":"out \"put\""})");
  CHECK(lines[1] == R"({"id":"2","status":"failed","attempts":3,"ms":1.000,"error":"boom"})");
  CHECK(lines[2] == R"({"id":"3","status":"ok","attempts":1,"ms":0.250})");
}

TEST_CASE("finish writes summary.json and moves the folder to done/", "[batch][ledger]") {
  TempDir dir;
  auto info = make_info(dir, false);
  {
    Batch b(info);
    b.record("1", JobStatus::kOk, 1, 1, "a");
    b.record("2", JobStatus::kTimeout, 1, 1, "slow");
    b.record("3", JobStatus::kInvalid, 0, 0, "bad line");
    CHECK(b.release_pending());
    b.finish();
    CHECK(b.finished());
  }
  const auto done = info.pool_dir / "done" / "b1";
  REQUIRE(std::filesystem::exists(done / "summary.json"));
  CHECK_FALSE(std::filesystem::exists(info.pool_dir / "active" / "b1"));
  simdjson::dom::parser parser;
  auto text = slurp(done / "summary.json");
  auto doc = parser.parse(text);
  CHECK(std::string_view(doc["batch"]) == "b1");
  CHECK(std::string_view(doc["pool"]) == "p");
  CHECK(std::string_view(doc["state"]) == "done");
  CHECK(int64_t(doc["jobs"]) == 3);
  CHECK(int64_t(doc["ok"]) == 1);
  CHECK(int64_t(doc["timeout"]) == 1);
  CHECK(int64_t(doc["invalid"]) == 1);
  CHECK(int64_t(doc["failed"]) == 0);
  CHECK(std::string_view(doc["first_error"]["id"]) == "2");
  CHECK(std::string_view(doc["first_error"]["error"]) == "slow");
  CHECK(std::string_view(doc["started"]).size() == 24);  // 2026-11-27T18:32:04.123Z
  CHECK(double(doc["seconds"]) >= 0.0);
}

TEST_CASE("a batch wakes who asked once it has ended, and not who forgot", "[batch][ledger]") {
  TempDir dir;
  auto info = make_info(dir, false);
  Batch b(info);
  int woken = 0;
  int forgotten = 0;
  bool summary_there = false;
  b.when_finished([&] {
    ++woken;
    summary_there = std::filesystem::exists(info.pool_dir / "done" / "b1" / "summary.json");
  });
  const auto id = b.when_finished([&] { ++forgotten; });
  b.forget_finished(id);
  b.record("1", JobStatus::kOk, 1, 1, "a");
  CHECK(woken == 0);
  CHECK(b.release_pending());
  b.finish();
  CHECK(woken == 1);
  CHECK(summary_there);  // woken once the folder has moved on
  CHECK(forgotten == 0);
  // Asked after the end: at once.
  b.when_finished([&] { ++woken; });
  CHECK(woken == 2);
}

TEST_CASE("under cancel_all the first failure cancels the batch; it ends in failed/",
          "[batch][ledger]") {
  TempDir dir;
  auto info = make_info(dir, true);
  Batch b(info);
  b.record("1", JobStatus::kOk, 1, 1, "");
  CHECK_FALSE(b.cancelled());
  CHECK_FALSE(b.cancel_token().load());
  b.record("2", JobStatus::kFailed, 1, 1, "first");
  CHECK(b.cancelled());
  CHECK(b.cancel_token().load());
  b.record("3", JobStatus::kFailed, 1, 1, "second");
  b.record("4", JobStatus::kCancelled, 0, 0, "batch cancelled");
  REQUIRE(b.release_pending());
  b.finish();
  auto text = slurp(info.pool_dir / "failed" / "b1" / "summary.json");
  simdjson::dom::parser parser;
  auto doc = parser.parse(text);
  CHECK(std::string_view(doc["state"]) == "cancelled");
  CHECK(std::string_view(doc["first_error"]["id"]) == "2");
  CHECK(int64_t(doc["cancelled"]) == 1);
}

TEST_CASE("under continue a failure does not cancel; no failure means first_error null",
          "[batch][ledger]") {
  TempDir dir;
  auto info = make_info(dir, false);
  Batch b(info);
  b.record("1", JobStatus::kInvalid, 0, 0, "x");
  CHECK_FALSE(b.cancelled());
  TempDir dir2;
  Batch clean(make_info(dir2, false));
  clean.record("1", JobStatus::kOk, 1, 0, "");
  REQUIRE(clean.release_pending());
  clean.finish();
  CHECK(slurp(dir2.path() / "p" / "done" / "b1" / "summary.json").find(R"("first_error":null)") !=
        std::string::npos);
}

TEST_CASE("concurrent records each land exactly once", "[batch][ledger]") {
  TempDir dir;
  Batch b(make_info(dir, false));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20'000;
  b.add_pending(kThreads * kPerThread);
  std::vector<std::thread> threads;
  std::atomic<int> finishers{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        b.record(std::to_string(t * kPerThread + i), JobStatus::kOk, 1, 0, "o");
        if (b.release_pending()) {
          ++finishers;
        }
      }
    });
  }
  std::thread flusher([&] {
    for (int i = 0; i < 50; ++i) {
      b.flush(true);
    }
  });
  for (auto& t : threads) {
    t.join();
  }
  flusher.join();
  CHECK(finishers == 0);  // the reader still holds its share
  CHECK(b.release_pending());
  b.flush(true);
  auto lines = lines_of(slurp(b.dir() / "results.jsonl"));
  CHECK(lines.size() == kThreads * kPerThread);
  std::set<std::string> unique(lines.begin(), lines.end());
  CHECK(unique.size() == lines.size());
  CHECK(b.counts().ok == kThreads * kPerThread);
}

TEST_CASE("results are written while a group commit's fsync is still running", "[batch][ledger]") {
  TempDir dir;
  auto info = make_info(dir, false);
  std::promise<void> entered;
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<int> syncs{0};
  info.sync_file = [&](int) {
    if (syncs.fetch_add(1) == 0) {
      entered.set_value();
      released.wait();  // a disk that takes its time
    }
    return 0;
  };
  Batch b(info);
  b.record("1", JobStatus::kOk, 1, 0, "first");
  auto commit = std::async(std::launch::async, [&] { return b.flush(true); });
  entered.get_future().wait();
  b.record("2", JobStatus::kOk, 1, 0, "second");
  auto write = std::async(std::launch::async, [&] { return b.flush(false); });
  const bool wrote = write.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  release.set_value();
  CHECK(wrote);  // the write did not wait for the fsync
  CHECK(write.get());
  CHECK(commit.get());
  CHECK(lines_of(slurp(b.dir() / "results.jsonl")).size() == 2);
  // The second line went in after the fsync began: the next group commit syncs it.
  CHECK(b.flush(true));
  CHECK(syncs == 2);
  CHECK(b.flush(true));
  CHECK(syncs == 2);  // nothing new: no fsync
}

// A failed fsync may have cost the pages it could not write, while a later fsync returns 0:
// the results must be written again before anything counts them durable. The disk's loss is
// played by overwriting the file's bytes when the fsync fails.
TEST_CASE("after a failed fsync the results are written again before they count as durable",
          "[batch][ledger]") {
  TempDir dir;
  auto info = make_info(dir, false);
  const auto results = info.pool_dir / "active" / "b1" / "results.jsonl";
  int syncs = 0;
  std::string at_second_sync;
  info.sync_file = [&](int fd) {
    ++syncs;
    if (syncs == 1) {
      const auto size = std::filesystem::file_size(results);
      const std::string lost(size, '#');
      REQUIRE(::pwrite(fd, lost.data(), lost.size(), 0) == static_cast<ssize_t>(lost.size()));
      errno = EIO;
      return -1;
    }
    if (syncs == 2) {
      at_second_sync = slurp(results);
    }
    return 0;
  };
  Batch b(info);
  b.record("1", JobStatus::kOk, 1, 0, "one");
  b.record("2", JobStatus::kFailed, 1, 0, "two");
  CHECK_FALSE(b.flush(true));
  CHECK(slurp(results).find_first_not_of('#') == std::string::npos);  // "lost"
  b.record("3", JobStatus::kOk, 1, 0, "three");
  CHECK(b.flush(false));  // a write between the two syncs does not count the lost ones
  CHECK(b.flush(true));
  CHECK(syncs == 2);
  // The fsync that succeeded came after the lost bytes were written again, with the new one.
  const auto lines = lines_of(at_second_sync);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].find(R"("id":"1")") != std::string::npos);
  CHECK(lines[1].find(R"("id":"2")") != std::string::npos);
  CHECK(lines[2].find(R"("id":"3")") != std::string::npos);
  CHECK(slurp(results) == at_second_sync);
  // Durable now: nothing is written again, and nothing new means no fsync.
  CHECK(b.flush(true));
  CHECK(syncs == 2);
}

TEST_CASE("a failed fsync is reported and tried again at the next group commit",
          "[batch][ledger]") {
  TempDir dir;
  auto info = make_info(dir, false);
  int syncs = 0;
  info.sync_file = [&](int) {
    if (++syncs == 1) {
      errno = EIO;
      return -1;
    }
    return 0;
  };
  Batch b(info);
  b.record("1", JobStatus::kOk, 1, 0, "o");
  CHECK_FALSE(b.flush(true));
  CHECK(b.write_error() == std::strerror(EIO));
  CHECK(b.flush(true));  // nothing new was written, but what was is not known durable yet
  CHECK(syncs == 2);
  CHECK(b.write_error().empty());
  CHECK(lines_of(slurp(b.dir() / "results.jsonl")).size() == 1);
}
