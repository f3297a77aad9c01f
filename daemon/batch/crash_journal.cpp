#include "daemon/batch/crash_journal.hpp"

#include "daemon/common/fs.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::batch {
namespace fs = std::filesystem;

struct RunningJobs::Slot {
  std::uint32_t state;  // kFree or kRunning, read and written through std::atomic_ref
  std::uint16_t pool_length;
  std::uint16_t batch_length;
  std::uint64_t line;
  char pool[64];
  char batch[432];
};

namespace {

constexpr std::uint32_t kFree = 0;
constexpr std::uint32_t kRunning = 1;
constexpr std::size_t kFileBytes = std::size_t{RunningJobs::kSlots} * 512;

}  // namespace

RunningJobs::RunningJobs(const fs::path& spool) {
  static_assert(sizeof(Slot) == 512 && kFileBytes == kSlots * sizeof(Slot));
  const auto file = spool / ".running";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(), "open " + file.string());
  }
  // Allocated up front: a store into a page of a mapped file that the disk has no room for
  // would kill the daemon with SIGBUS.
  if (const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(kFileBytes)); err != 0) {
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "allocate " + file.string());
  }
  map_ = ::mmap(nullptr, kFileBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw std::system_error(err, std::generic_category(), "map " + file.string());
  }
  for (int i = 0; i < kSlots; ++i) {
    Slot* s = slot(i);
    if (std::atomic_ref(s->state).load(std::memory_order_acquire) != kRunning) {
      continue;
    }
    if (s->pool_length <= sizeof s->pool && s->batch_length <= sizeof s->batch) {
      left_over_.push_back(
          {std::string(s->pool, s->pool_length), std::string(s->batch, s->batch_length), s->line});
    }
    std::atomic_ref(s->state).store(kFree, std::memory_order_release);
  }
  free_.reserve(kSlots);
  for (int i = kSlots - 1; i >= 0; --i) {
    free_.push_back(i);  // lowest first: the slots in use stay together
  }
}

RunningJobs::~RunningJobs() {
  if (map_ != nullptr) {
    ::munmap(map_, kFileBytes);
  }
}

RunningJobs::Slot* RunningJobs::slot(int index) const noexcept {
  return static_cast<Slot*>(map_) + index;
}

int RunningJobs::acquire() {
  std::lock_guard lock(mutex_);
  if (free_.empty()) {
    return kNoSlot;
  }
  const int index = free_.back();
  free_.pop_back();
  return index;
}

void RunningJobs::release(int index) {
  if (index == kNoSlot) {
    return;
  }
  clear(index);
  std::lock_guard lock(mutex_);
  free_.push_back(index);
}

void RunningJobs::mark(int index, std::string_view pool, std::string_view batch,
                       std::uint64_t line) noexcept {
  if (index == kNoSlot) {
    return;
  }
  Slot* s = slot(index);
  pool = pool.substr(0, sizeof s->pool);
  batch = batch.substr(0, sizeof s->batch);  // a longer id is not found again: it simply reruns
  std::memcpy(s->pool, pool.data(), pool.size());
  std::memcpy(s->batch, batch.data(), batch.size());
  s->pool_length = static_cast<std::uint16_t>(pool.size());
  s->batch_length = static_cast<std::uint16_t>(batch.size());
  s->line = line;
  // Published last: a crash halfway through leaves the slot free, and the job had not started.
  std::atomic_ref(s->state).store(kRunning, std::memory_order_release);
}

void RunningJobs::clear(int index) noexcept {
  if (index != kNoSlot) {
    std::atomic_ref(slot(index)->state).store(kFree, std::memory_order_release);
  }
}

void RunningJobs::clear_all() noexcept {
  for (int i = 0; i < kSlots; ++i) {
    clear(i);
  }
}

CrashRecords read_crash_records(const fs::path& batch_dir) {
  CrashRecords out;
  std::error_code ec;
  if (!fs::exists(batch_dir / "crashes", ec)) {
    return out;
  }
  std::istringstream in(common::read_file(batch_dir / "crashes"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::uint64_t number = 0;
    CrashRecord r;
    std::string with;
    if (fields >> number >> r.crashes >> with) {
      r.alone = with == "alone";
      out[number] = r;
    }
  }
  return out;
}

void note_crash(const fs::path& spool, const std::vector<JobRef>& in_flight) {
  const bool alone = in_flight.size() == 1;
  std::map<fs::path, std::vector<std::uint64_t>> by_batch;
  for (const auto& job : in_flight) {
    by_batch[spool / job.pool / "active" / job.batch].push_back(job.line);
  }
  for (const auto& [dir, lines] : by_batch) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      continue;  // finished (or removed) since
    }
    auto records = read_crash_records(dir);
    for (const auto line : lines) {
      auto& r = records[line];
      ++r.crashes;
      r.alone = alone;
    }
    std::string text = "# input line, daemon crashes while it ran, alone or with others\n";
    for (const auto& [line, r] : records) {
      text += fmt::format("{} {} {}\n", line, r.crashes, r.alone ? "alone" : "with-others");
    }
    common::write_file_durably(dir / "crashes", text);
  }
}

}  // namespace barista::batch
