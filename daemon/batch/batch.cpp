#include "daemon/batch/batch.hpp"

#include "daemon/common/error_text.hpp"
#include "daemon/common/fs.hpp"
#include "daemon/common/json.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::batch {
namespace {

// Results are handed to the kernel once this much is buffered, even between group commits.
constexpr std::size_t kWriteThreshold = 256UL * 1024;
// At most this much written and not yet synced is kept in memory (to be written again should
// the fsync fail): a writer that finds more syncs at once instead of waiting for the group
// commit, so that a fast pool's memory stays bounded however slow the disk.
constexpr std::uint64_t kMaxUnsynced = 4UL * 1024 * 1024;

// Writes all of `data` at `offset`; 0, or the errno of the write that failed.
int write_all_at(int fd, std::string_view data, std::uint64_t offset) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

}  // namespace

Batch::Batch(Info info, ResumedState resumed)
    : BatchCore(info.id),
      info_(std::move(info)),
      counts_(resumed.counts),
      first_error_(std::move(resumed.first_error)) {
  if (resumed.cancelled) {
    cancel();
  }
  jobs_read_ = counts_.total();
  const auto file = dir() / "results.jsonl";
  // Written at explicit offsets (pwrite), not O_APPEND: a rewrite after a failed fsync writes
  // in place, which Linux ignores for a file opened with O_APPEND.
  fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "open " + file.string());
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw std::system_error(err, std::generic_category(), "stat " + file.string());
  }
  written_ = static_cast<std::uint64_t>(st.st_size);
  // A resumed batch's results so far came from an earlier run, and this one holds no copy to
  // write again: they are made durable now, or the batch is not opened (and tried again).
  if (written_ > 0 && (info_.sync_file ? info_.sync_file(fd_) : ::fdatasync(fd_)) != 0) {
    const int err = errno;
    ::close(fd_);
    throw std::system_error(err, std::generic_category(), "fsync " + file.string());
  }
  unsynced_from_ = written_;
}

Batch::~Batch() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::filesystem::path Batch::dir() const { return info_.pool_dir / "active" / info_.id; }

void Batch::record(std::string_view id, JobStatus status, int attempts, double ms,
                   std::string_view text) {
  thread_local ResultBuffer one;
  one.add(id, status, attempts, ms, text);
  commit(one);
}

void Batch::commit(ResultBuffer& results) {
  if (results.empty()) {
    return;
  }
  if (info_.counters) {
    info_.counters->add(results.tally_);
  }
  // Under cancel_all, the buffer's first failure cancels the batch (it holds at most one
  // failure: a worker hands a failure over at once).
  std::optional<std::string> cancel_for;
  bool write_now = false;
  {
    std::lock_guard lock(mutex_);
    buffer_ += results.lines_;
    counts_.add(results.counts_);
    if (results.first_error_ && info_.cancel_all && !cancelled()) {
      cancel_for = results.first_error_->id;
    }
    if (results.first_error_ && !first_error_) {
      first_error_ = std::move(results.first_error_);
    }
    write_now = buffer_.size() >= kWriteThreshold;
  }
  results.clear();
  if (cancel_for) {
    spdlog::warn(
        "batch '{}' (pool '{}'): job '{}' failed, cancelling the batch (on_error: cancel_all)",
        info_.id, info_.pool, *cancel_for);
    cancel();
  }
  if (write_now) {
    flush(false);
  }
}

bool Batch::flush(bool sync) {
  int error = 0;
  std::uint64_t written = 0;
  {
    std::lock_guard io(io_mutex_);
    {
      std::lock_guard lock(mutex_);
      spare_.swap(buffer_);
    }
    if (!spare_.empty()) {
      error = write_all_at(fd_, spare_, written_);
      if (error == 0) {
        written_ += spare_.size();
        // Kept, as written, until an fsync after it has succeeded.
        unsynced_.push_back(std::move(spare_));
        spare_ = std::string();
        sync = sync || written_ - unsynced_from_ > kMaxUnsynced;
      } else {
        // Cut what part of it got in (the file ends on a whole line again) and keep it all for
        // the next try: a full disk loses no result and leaves no torn line behind.
        (void)!::ftruncate(fd_, static_cast<off_t>(written_));
        std::lock_guard lock(mutex_);
        spare_ += buffer_;
        buffer_.swap(spare_);
        spare_.clear();
      }
    }
    written = written_;
  }
  // The fsync runs outside io_mutex_: it takes milliseconds on a real disk, and a worker whose
  // buffer fills meanwhile must be able to write rather than wait for it. Every byte written
  // before fdatasync() is called is on disk when it returns. After a failed fsync, the next one
  // first writes again all that is not known durable (under sync_mutex_, so that no fsync
  // between the failure and the rewrite can count those bytes).
  if (error == 0 && sync) {
    std::lock_guard lock(sync_mutex_);
    if (rewrite_) {
      std::lock_guard io(io_mutex_);
      error = rewrite_unsynced();
      written = written_;
    }
    if (error == 0 && unsynced_from_ < written) {
      if ((info_.sync_file ? info_.sync_file(fd_) : ::fdatasync(fd_)) == 0) {
        forget_synced(written);
      } else {
        error = errno;
        rewrite_ = true;
      }
    }
  }
  std::lock_guard lock(mutex_);
  write_error_ = error == 0 ? std::string() : common::error_text(error);
  return error == 0;
}

int Batch::rewrite_unsynced() {
  std::uint64_t offset = unsynced_from_;
  for (const auto& piece : unsynced_) {
    if (const int error = write_all_at(fd_, piece, offset); error != 0) {
      return error;
    }
    offset += piece.size();
  }
  rewrite_ = false;  // unless this sync fails too
  spdlog::warn("batch '{}' (pool '{}'): wrote {} bytes of results again after a failed fsync",
               info_.id, info_.pool, offset - unsynced_from_);
  return 0;
}

void Batch::forget_synced(std::uint64_t synced) {
  std::lock_guard io(io_mutex_);
  std::size_t drop = 0;
  while (drop < unsynced_.size() && unsynced_from_ + unsynced_[drop].size() <= synced) {
    unsynced_from_ += unsynced_[drop].size();
    ++drop;
  }
  unsynced_.erase(unsynced_.begin(), unsynced_.begin() + static_cast<std::ptrdiff_t>(drop));
}

std::string Batch::write_error() const {
  std::lock_guard lock(mutex_);
  return write_error_;
}

std::uint64_t Batch::when_finished(std::function<void()> wake) {
  {
    std::lock_guard lock(end_mutex_);
    if (!finished()) {
      wakes_.emplace_back(++next_wake_, std::move(wake));
      return next_wake_;
    }
  }
  wake();
  return 0;
}

void Batch::forget_finished(std::uint64_t id) {
  std::lock_guard lock(end_mutex_);
  std::erase_if(wakes_, [id](const auto& w) { return w.first == id; });
}

Counts Batch::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

Summary Batch::summary(std::string_view state,
                       std::optional<std::chrono::system_clock::time_point> end) const {
  std::lock_guard lock(mutex_);
  Summary out;
  out.batch = info_.id;
  out.pool = info_.pool;
  out.state = state;
  out.counts = counts_;
  out.first_error = first_error_;
  out.started = common::iso8601_utc(info_.started);
  if (end) {
    out.jobs = counts_.total();
    out.finished = common::iso8601_utc(*end);
    out.seconds = std::chrono::duration<double>(*end - info_.started).count();
  } else {
    // Running: the jobs read so far, and whether that is all of them.
    out.jobs = jobs_read();
    out.timed = false;
    out.read_all = read_all();
  }
  return out;
}

void Batch::finish() {
  if (!flush(false)) {
    throw std::runtime_error("cannot write its results: " + write_error());
  }
  const bool was_cancelled = cancelled();
  const auto end = std::chrono::system_clock::now();
  // The summary is written first and synced after the results: its blocks go to disk with the
  // results' sync, one journal commit for both instead of one each. It is still only renamed
  // into place once both are durable, so a summary.json never names results that are not.
  common::DurableWrite summary_file(dir() / "summary.json",
                                    summary(was_cancelled ? "cancelled" : "done", end).json());
  if (!flush(true)) {
    throw std::runtime_error("cannot write its results: " + write_error());
  }
  summary_file.commit();
  const auto target = info_.pool_dir / (was_cancelled ? "failed" : "done") / info_.id;
  // The move is not synced: summary.json is durable in active/ID/ already, and a restart that
  // finds it there finishes the move (PoolSpool::recover). Two folder syncs fewer per batch.
  if (::rename(dir().c_str(), target.c_str()) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            fmt::format("rename {} to {}", dir().string(), target.string()));
  }
  std::vector<std::pair<std::uint64_t, std::function<void()>>> wakes;
  {
    std::lock_guard lock(end_mutex_);
    finished_.store(true, std::memory_order_release);
    wakes.swap(wakes_);
  }
  for (auto& [id, wake] : wakes) {
    wake();
  }
  if (info_.counters) {
    (was_cancelled ? info_.counters->batches_cancelled : info_.counters->batches_done)
        .fetch_add(1, std::memory_order_relaxed);
  }
  const auto c = counts();
  spdlog::info(
      "batch '{}' (pool '{}') {}: {} jobs, {} ok, {} failed, {} timeout, {} cancelled, {} invalid",
      info_.id, info_.pool, was_cancelled ? "cancelled" : "done", c.total(), c.ok, c.failed,
      c.timeout, c.cancelled, c.invalid);
}

}  // namespace barista::batch
