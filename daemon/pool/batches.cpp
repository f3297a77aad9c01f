// A spool pool's batches coming and going: claims from the inbox and from `barista submit`,
// recovery of what an earlier run left in active/, the end of a batch, and what happens while
// results cannot be written.
#include "daemon/common/fs.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/pool/tuning.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::pool {
namespace {

using Clock = std::chrono::steady_clock;
using namespace tuning;

}  // namespace

std::optional<std::string> Pool::claim(std::string_view name) {
  std::lock_guard lock(claim_mutex_);
  return claim_locked(spool_.inbox() / std::string(name), name);
}

std::optional<std::string> Pool::claim_locked(const std::filesystem::path& source,
                                              std::string_view name, bool submitted) {
  if (redis_) {
    if (name.starts_with('.')) {
      return std::nullopt;  // ignored in every inbox (a submission's temp file among them)
    }
    // A Redis pool's jobs live in its stream: `barista submit` puts them there.
    spdlog::warn(
        "pool '{}': inbox/{} is not read: the pool takes its jobs from redis (use "
        "barista submit)",
        name_, name);
    return std::nullopt;
  }
  if (storage_failing_.load()) {
    return std::nullopt;  // it waits in the inbox: claimed when results can be written again
  }
  if (!submitted) {
    std::lock_guard lock(mutex_);
    if (active_.size() >= kMaxClaimed) {
      // Enough batches are claimed ahead of the workers: this one waits in the inbox, durable
      // as it is, and the claimer thread takes it when some of them have ended.
      inbox_backlog_ = true;
      return std::nullopt;
    }
  }
  const bool cancel_all = settings()->config.on_error == config::OnError::kCancelAll;
  std::optional<batch::Batch::Info> info;
  try {
    info = submitted ? spool_.claim(source, name, cancel_all) : spool_.claim(name, cancel_all);
  } catch (const std::system_error& e) {
    if (e.code() == std::errc::no_space_on_device) {
      note_write_failure(e.code().message());
    }
    throw;
  }
  if (!info) {
    return std::nullopt;
  }
  info->counters = counters_;
  std::string id = info->id;
  std::shared_ptr<batch::Batch> b;
  try {
    b = std::make_shared<batch::Batch>(*info);
  } catch (const std::system_error& e) {
    spool_.unclaim(*info, source);
    if (e.code() == std::errc::no_space_on_device) {
      note_write_failure(e.code().message());
    }
    throw;
  }
  if (!submitted) {
    spdlog::info("pool '{}': batch '{}' claimed from inbox/{}", name_, id, name);
  }
  add_batch(std::move(b));
  return id;
}

std::string Pool::accept_submission(const std::filesystem::path& tmp, std::string_view name) {
  std::lock_guard lock(claim_mutex_);
  if (storage_failing_.load()) {
    throw std::runtime_error(fmt::format(
        "pool '{}' cannot write results now (is the disk full?): try again later", name_));
  }
  // Straight from the temp file to active/ID/: the claim's two folder syncs make the new name
  // durable, so the batch skips the inbox (and the inbox's sync) on its way.
  auto id = claim_locked(tmp, name, /*submitted=*/true);
  if (!id) {
    throw std::runtime_error("the submitted batch vanished before it was claimed");
  }
  return *id;
}

std::shared_ptr<const PoolSettings> Pool::settings() const {
  std::lock_guard lock(mutex_);
  return settings_;
}

void Pool::recover() {
  if (const auto n = spool_.remove_abandoned_submissions(); n > 0) {
    spdlog::warn(
        "pool '{}': removed {} partly uploaded submission(s) of a daemon that stopped "
        "while receiving them (their clients were never given a batch id)",
        name_, n);
  }
  if (redis_) {
    return;  // its unfinished jobs are pending in Redis
  }
  const bool cancel_all = settings()->config.on_error == config::OnError::kCancelAll;
  std::lock_guard lock(claim_mutex_);
  // A batch claimed or submitted since the pool started is running already: not resumed twice,
  // and its live results file is not touched.
  for (auto& r : spool_.recover(cancel_all,
                                [&](const std::string& id) { return find_batch(id) != nullptr; })) {
    spdlog::info("pool '{}': resuming batch '{}' ({} results already recorded)", name_, r.info.id,
                 r.state.counts.total());
    r.info.counters = counters_;
    add_batch(std::make_shared<batch::Batch>(std::move(r.info), std::move(r.state)),
              std::move(r.recorded), std::move(r.crashes));
  }
}

void Pool::finish_batch(const std::shared_ptr<batch::Batch>& b) {
  try {
    b->finish();
  } catch (const std::exception& e) {
    // Its summary is not written: the housekeeping tries again once results can be written.
    spdlog::error("batch '{}' (pool '{}'): cannot finish: {}", b->id(), name_, e.what());
    note_write_failure(e.what());  // retried with the rest once writing works again
    std::lock_guard lock(mutex_);
    unfinished_.push_back(b);
    return;
  }
  std::lock_guard lock(mutex_);
  std::erase(active_, b);
  if (inbox_backlog_ && active_.size() < kMaxClaimed / 2) {
    claimer_cv_.notify_one();
  }
}

void Pool::claimer_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_.load()) {
    const auto room = [&] { return inbox_backlog_ && active_.size() < kMaxClaimed / 2; };
    claimer_cv_.wait(lock, [&] { return stopping_.load() || room(); });
    if (stopping_.load()) {
      break;
    }
    const auto limit = kMaxClaimed - active_.size();
    lock.unlock();
    claim_from_inbox(limit);
    lock.lock();
  }
}

void Pool::note_write_failure(const std::string& why) {
  last_failure_ns_.store(Clock::now().time_since_epoch().count());
  if (!storage_failing_.exchange(true)) {
    spdlog::error(
        "pool '{}': cannot write results ({}): no new job starts and no batch is claimed until "
        "they can be written",
        name_, why);
  }
}

void Pool::note_write_success() {
  if (!storage_failing_.exchange(false)) {
    return;
  }
  spdlog::info("pool '{}': results can be written again: resuming", name_);
  idle_.wake_all();  // workers read again
  std::vector<std::shared_ptr<batch::Batch>> retry;
  {
    std::lock_guard lock(mutex_);
    retry.swap(unfinished_);
  }
  for (const auto& b : retry) {
    finish_batch(b);
  }
  claim_from_inbox();  // batches that arrived meanwhile stayed there
}

void Pool::claim_from_inbox(std::size_t limit) {
  {
    std::lock_guard lock(mutex_);
    inbox_backlog_ = false;
  }
  std::error_code ec;
  std::size_t claimed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(spool_.inbox(), ec)) {
    const auto name = entry.path().filename().string();
    if (name.starts_with('.')) {
      continue;
    }
    if (++claimed > limit) {
      std::lock_guard lock(mutex_);
      inbox_backlog_ = true;  // the rest at the next look
      return;
    }
    try {
      claim(name);
    } catch (const std::exception& e) {
      spdlog::error("pool '{}': cannot claim inbox/{}: {}", name_, name, e.what());
    }
    std::lock_guard lock(mutex_);
    if (inbox_backlog_ || storage_failing_.load()) {
      return;  // full again: the next look goes on
    }
  }
}

}  // namespace barista::pool
