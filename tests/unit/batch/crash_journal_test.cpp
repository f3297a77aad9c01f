// What a crash leaves for the next start: the jobs marked running, and each batch's crash count.
#include "daemon/batch/crash_journal.hpp"

#include "tests/unit/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace barista::batch {
namespace {

using testing::TempDir;

TEST_CASE("jobs marked running are what the next start finds left over", "[batch][crash]") {
  TempDir spool;
  {
    RunningJobs first(spool.path());
    CHECK(first.left_over().empty());
    const int a = first.acquire();
    const int b = first.acquire();
    const int c = first.acquire();
    REQUIRE(a != b);
    first.mark(a, "scrape", "urls", 17);
    first.mark(b, "scrape", "urls", 18);
    first.clear(b);                                     // returned
    first.mark(c, "resize", std::string(500, 'x'), 3);  // an id too long for a slot is cut
    // The process dies here: nothing is cleared.
  }
  {
    RunningJobs second(spool.path());
    REQUIRE(second.left_over().size() == 2);
    CHECK(second.left_over()[0].pool == "scrape");
    CHECK(second.left_over()[0].batch == "urls");
    CHECK(second.left_over()[0].line == 17);
    CHECK(second.left_over()[1].batch == std::string(432, 'x'));
    second.mark(second.acquire(), "scrape", "urls", 40);
    second.clear_all();  // a clean stop
  }
  RunningJobs third(spool.path());
  CHECK(third.left_over().empty());
}

TEST_CASE("every slot can be taken and given back", "[batch][crash]") {
  TempDir spool;
  RunningJobs jobs(spool.path());
  std::vector<int> slots;
  for (int i = 0; i < RunningJobs::kSlots; ++i) {
    slots.push_back(jobs.acquire());
  }
  CHECK(jobs.acquire() == RunningJobs::kNoSlot);
  jobs.mark(RunningJobs::kNoSlot, "p", "b", 1);  // a worker without a slot runs unrecorded
  jobs.release(slots.back());
  CHECK(jobs.acquire() == slots.back());
}

TEST_CASE("a crash is counted against each job in flight, alone or with others", "[batch][crash]") {
  TempDir spool;
  const auto batch = spool.path() / "pool" / "active" / "b";
  std::filesystem::create_directories(batch);
  CHECK(read_crash_records(batch).empty());

  note_crash(spool.path(), {{"pool", "b", 5}, {"pool", "b", 9}, {"pool", "gone", 1}});
  auto records = read_crash_records(batch);
  REQUIRE(records.size() == 2);
  CHECK(records[5].crashes == 1);
  CHECK_FALSE(records[5].alone);

  note_crash(spool.path(), {{"pool", "b", 9}});
  records = read_crash_records(batch);
  CHECK(records[5].crashes == 1);
  CHECK(records[9].crashes == 2);
  CHECK(records[9].alone);
  CHECK_FALSE(std::filesystem::exists(spool.path() / "pool" / "active" / "gone"));
}

}  // namespace
}  // namespace barista::batch
