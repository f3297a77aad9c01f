// A spool pool's batches coming and going: claims from the inbox and from `barista submit`,
// recovery of what an earlier run left in active/, and what happens while results cannot be
// written.
#include "daemon/common/error_text.hpp"
#include "daemon/pool/tuning.hpp"
#include "daemon/spool/spool_backend.hpp"

#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::spool {
namespace {

using Clock = std::chrono::steady_clock;
using pool::tuning::kMaxClaimed;
using pool::tuning::kStorageRetry;
using pool::tuning::kStorageRetryMax;

}  // namespace

SpoolBackend::SpoolBackend(std::string pool, const std::filesystem::path& spool,
                           std::shared_ptr<batch::RunningJobs> running)
    : name_(std::move(pool)), spool_(spool, name_), running_(std::move(running)) {
  spool_.ensure();
}

SpoolBackend::~SpoolBackend() { stop(); }

void SpoolBackend::start() {
  claimer_ = std::thread([this] { claimer_loop(); });
}

void SpoolBackend::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  claimer_cv_.notify_all();
  if (claimer_.joinable()) {
    claimer_.join();
  }
}

void SpoolBackend::interrupt() {
  std::lock_guard lock(mutex_);
  for (const auto& b : active_) {
    b->interrupt();
  }
}

void SpoolBackend::add_batch(std::shared_ptr<batch::Batch> batch,
                             std::unordered_map<std::string, std::uint32_t> recorded,
                             batch::CrashRecords crashes) {
  {
    std::lock_guard lock(mutex_);
    active_.push_back(batch);
    waiting_.push_back({std::move(batch), std::move(recorded), std::move(crashes)});
    readable_.store(true, std::memory_order_release);
  }
  pool_->input_ready();  // an idle worker reads it
}

std::optional<std::string> SpoolBackend::claim(std::string_view name) {
  std::lock_guard lock(claim_mutex_);
  try {
    auto id = claim_locked(spool_.inbox() / std::string(name), name);
    if (id) {
      std::lock_guard state(mutex_);
      failed_claims_.erase(std::string(name));
    }
    return id;
  } catch (const std::exception& e) {
    claim_failed(name, e);
    return std::nullopt;
  }
}

void SpoolBackend::claim_failed(std::string_view name, const std::exception& e) {
  const auto* error = dynamic_cast<const std::system_error*>(&e);
  const bool fault = error != nullptr && common::is_storage_fault(*error);
  std::lock_guard lock(mutex_);
  // The file waits in the inbox; it is looked at again, whatever the cause (an outage's retry
  // rounds claim it, or the monitor's next look).
  claims_failed_ = true;
  next_claim_retry_ = Clock::now() + kStorageRetryMax;
  if (!fault && failed_claims_.emplace(name).second) {
    spdlog::error("pool '{}': cannot claim inbox/{}: {}; tried again every {} s", name_, name,
                  e.what(),
                  std::chrono::duration_cast<std::chrono::seconds>(kStorageRetryMax).count());
  }  // a storage fault is said once for its outage (note_storage_failure)
}

void SpoolBackend::retry_claims() {
  {
    std::lock_guard lock(mutex_);
    if (!claims_failed_ || outage_ || Clock::now() < next_claim_retry_) {
      return;
    }
    claims_failed_ = false;
  }
  claim_from_inbox();
}

std::optional<std::string> SpoolBackend::claim_locked(const std::filesystem::path& source,
                                                      std::string_view name, bool submitted,
                                                      int weight) {
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
  const bool cancel_all = pool_->settings()->config.on_error == config::OnError::kCancelAll;
  std::optional<batch::Batch::Info> info;
  try {
    info =
        submitted ? spool_.claim(source, name, cancel_all, weight) : spool_.claim(name, cancel_all);
  } catch (const std::system_error& e) {
    if (common::is_storage_fault(e)) {
      // The file waits where it was, claimed at a retry; the claimed batches run on.
      note_storage_failure(e.what(), /*stop_jobs=*/false);
    }
    throw;
  }
  if (!info) {
    return std::nullopt;
  }
  info->counters = pool_->shared_counters();
  std::string id = info->id;
  std::shared_ptr<batch::Batch> b;
  try {
    b = std::make_shared<batch::Batch>(*info);
  } catch (const std::system_error& e) {
    spool_.unclaim(*info, source);
    if (common::is_storage_fault(e)) {
      note_storage_failure(e.what(), /*stop_jobs=*/false);
    }
    throw;
  }
  if (!submitted) {
    spdlog::info("pool '{}': batch '{}' claimed from inbox/{}", name_, id, name);
  }
  add_batch(std::move(b));
  return id;
}

std::string SpoolBackend::accept_submission(const std::filesystem::path& tmp, std::string_view name,
                                            int weight) {
  std::lock_guard lock(claim_mutex_);
  if (storage_failing_.load()) {
    // "busy": the CLI tries again for a while (daemon/cli/submit.cpp).
    std::lock_guard state(mutex_);
    throw std::runtime_error(fmt::format(
        "pool '{}' is busy: its storage is failing ({}); try again later", name_, storage_error_));
  }
  // Straight from the temp file to active/ID/: the claim's two folder syncs make the new name
  // durable, so the batch skips the inbox (and the inbox's sync) on its way.
  auto id = claim_locked(tmp, name, /*submitted=*/true, weight);
  if (!id) {
    throw std::runtime_error("the submitted batch vanished before it was claimed");
  }
  return *id;
}

void SpoolBackend::recover() {
  spool_.remove_abandoned_submissions();
  const bool cancel_all = pool_->settings()->config.on_error == config::OnError::kCancelAll;
  std::lock_guard lock(claim_mutex_);
  // A batch claimed or submitted since the pool started is running already: not resumed twice,
  // and its live results file is not touched.
  for (auto& r : spool_.recover(cancel_all,
                                [&](const std::string& id) { return find_batch(id) != nullptr; })) {
    spdlog::info("pool '{}': resuming batch '{}' ({} results already recorded)", name_, r.info.id,
                 r.state.counts.total());
    r.info.counters = pool_->shared_counters();
    add_batch(std::make_shared<batch::Batch>(std::move(r.info), std::move(r.state)),
              std::move(r.recorded), std::move(r.crashes));
  }
}

std::shared_ptr<batch::Batch> SpoolBackend::find_batch(std::string_view id) const {
  std::lock_guard lock(mutex_);
  for (const auto& b : active_) {
    if (b->id() == id) {
      return b;
    }
  }
  return nullptr;
}

std::vector<pool::BatchStatus> SpoolBackend::batches() const {
  std::vector<pool::BatchStatus> out;
  std::lock_guard lock(mutex_);
  for (const auto& b : active_) {
    const auto c = b->counts();
    out.push_back({b->id(), name_, c.total(), b->jobs_read(), c.failed + c.timeout + c.invalid,
                   b->read_all()});
  }
  return out;
}

void SpoolBackend::claimer_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto room = [&] { return inbox_backlog_ && active_.size() < kMaxClaimed / 2; };
    claimer_cv_.wait(lock, [&] { return stopping_ || room(); });
    if (stopping_) {
      break;
    }
    const auto limit = kMaxClaimed - active_.size();
    lock.unlock();
    claim_from_inbox(limit);
    lock.lock();
  }
}

void SpoolBackend::note_storage_failure(const std::string& why, bool stop_jobs) {
  storage_errors_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  storage_error_ = why;
  if (stop_jobs) {
    storage_failing_.store(true);
  }
  if (outage_) {
    return;  // said already; the retry round goes on
  }
  outage_ = true;
  outage_since_ = Clock::now();
  retry_delay_ = kStorageRetry;
  next_retry_ = outage_since_ + retry_delay_;
  spdlog::error(
      "pool '{}': storage failing ({}): {}; trying again every {}-{} s", name_, why,
      stop_jobs ? "no new job starts and no batch is claimed" : "batches wait in the inbox",
      std::chrono::duration_cast<std::chrono::seconds>(kStorageRetry).count(),
      std::chrono::duration_cast<std::chrono::seconds>(kStorageRetryMax).count());
}

void SpoolBackend::probe_waiting_inputs() {
  // The inputs that could not be opened wait at the front of waiting_: each is opened (and
  // closed) here, so that the outage does not end while one of them still cannot be read.
  std::vector<std::shared_ptr<batch::Batch>> waiting;
  {
    std::lock_guard lock(mutex_);
    for (const auto& w : waiting_) {
      waiting.push_back(w.batch);
    }
  }
  for (const auto& b : waiting) {
    std::string why;
    bool fault = false;
    const int fd = batch::open_batch_input(b->input_path(), why, &fault);
    if (fd >= 0) {
      ::close(fd);
    } else if (fault) {
      note_storage_failure(fmt::format("cannot open the input of batch '{}': {}", b->id(), why));
      return;
    }
  }
}

std::string SpoolBackend::storage_error() const {
  std::lock_guard lock(mutex_);
  return outage_ ? storage_error_ : std::string();
}

void SpoolBackend::retry_storage() {
  {
    std::lock_guard lock(mutex_);
    if (!outage_ || Clock::now() < next_retry_) {
      return;
    }
  }
  // The gate opens for this round; any failure in it ends the round's hope (and a failure of
  // results or inputs closes the gate again).
  const auto errors_before = storage_errors_.load();
  const auto failed = [&] { return storage_errors_.load() != errors_before; };
  storage_failing_.store(false);
  std::vector<std::shared_ptr<batch::Batch>> retry;
  {
    std::lock_guard lock(mutex_);
    retry.swap(unfinished_);
  }
  for (const auto& b : retry) {
    finish_batch(b);
  }
  if (!failed()) {
    try {
      recover();  // a claim left half done (its undoing failed too) is taken up here
    } catch (const std::system_error& e) {
      note_storage_failure(e.what(), /*stop_jobs=*/false);
    } catch (const std::exception& e) {
      spdlog::error("pool '{}': looking for half-claimed batches: {}", name_, e.what());
    }
  }
  if (!failed()) {
    claim_from_inbox();  // batches that arrived meanwhile stayed there
  }
  if (!failed()) {
    probe_waiting_inputs();
  }
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  if (failed()) {
    retry_delay_ = std::min<Clock::duration>(retry_delay_ * 2, kStorageRetryMax);
    next_retry_ = now + retry_delay_;
    return;
  }
  outage_ = false;
  spdlog::info("pool '{}': storage works again after {:.1f} s: resuming", name_,
               std::chrono::duration<double>(now - outage_since_).count());
  pool_->wake_all();  // workers read again
}

void SpoolBackend::claim_from_inbox(std::size_t limit) {
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
    claim(name);  // a failure is the claim's to report, and tried again later
    std::lock_guard lock(mutex_);
    if (inbox_backlog_ || storage_failing_.load()) {
      return;  // full again: the next look goes on
    }
  }
}

}  // namespace barista::spool
