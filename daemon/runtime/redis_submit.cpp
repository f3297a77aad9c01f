// `barista submit` to a pool shared through Redis (docs/cli.md#redis-pools): the received batch
// is read with the spool's rules and stored in the pool's stream, with its batch record.
#include "daemon/batch/job_parser.hpp"
#include "daemon/batch/line_reader.hpp"
#include "daemon/batch/result_buffer.hpp"
#include "daemon/batch/spool.hpp"
#include "daemon/control/replies.hpp"
#include "daemon/runtime/redis_control.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

using control::error_reply;
using namespace redis_control;
namespace fs = std::filesystem;

// Jobs go to the stream in groups, one round trip each; bytes bound the memory a group holds.
constexpr std::size_t kJobsPerTrip = 1000;
constexpr std::size_t kBytesPerTrip = 8U << 20U;
constexpr std::size_t kDuplicatesNamed = 10;

// The batch id a file name asks for, as the spool's claim makes it: the name without its last
// extension.
std::string wanted_id(const std::string& name) {
  auto stem = fs::path(name).stem().string();
  return stem.empty() ? name : stem;
}

// Reads a submitted batch file as a spool pool's intake reads a batch
// (docs/reference.md#input-formats) and stores it in the pool's stream: its jobs as stream entries,
// its invalid lines as their `invalid` results at once (through a Recorder: no stream entry stands
// for them), so that every line still ends with exactly one result. Both go in groups, one round
// trip each.
class RedisSubmission {
 public:
  RedisSubmission(const RedisPool& pool, redis::StreamStore& store, std::string id,
                  const std::string& name)
      : pool_(pool), store_(store), id_(std::move(id)), format_(batch::format_for(name)) {}

  /// Reads every line and stores it. Throws RedisError, std::system_error (a read error) or
  /// std::runtime_error (the daemon is stopping).
  void run(batch::LineReader& reader, const std::function<bool()>& stopping) {
    batch::JobParser parser(format_, pool_.settings->config.max_job_bytes);
    batch::Line line;
    while (reader.next(line)) {
      const auto job = parser.parse(line);
      if (job.skip) {
        continue;
      }
      // Redis keeps the first result of each job id: a second job with that id would never get
      // a result of its own, and the batch would never reach its total.
      if (format_ == batch::InputFormat::kJsonl && !ids_.emplace(job.id).second) {
        note_duplicate(job.id);
        continue;
      }
      if (job.valid) {
        group_bytes_ += job.id.size() + job.payload.size();
        group_.emplace_back(job.id, job.payload);
        group_keys_.emplace_back(job.key);
      } else {
        add_invalid(job.id, job.error);
      }
      if (group_.size() + invalid_group_.size() >= kJobsPerTrip || group_bytes_ >= kBytesPerTrip) {
        flush();
        if (stopping()) {
          throw std::runtime_error("baristad is stopping");
        }
      }
    }
    flush();
  }

  /// Jobs in Redis so far: stream entries added and invalid results recorded (each group counts
  /// once its round trip has succeeded).
  [[nodiscard]] std::uint64_t stored() const noexcept { return added_ + invalid_; }
  [[nodiscard]] std::uint64_t invalid() const noexcept { return invalid_; }

  /// "" when no job id repeated; else what to warn about, naming the first few.
  [[nodiscard]] std::string duplicates_warning() const {
    if (duplicates_ == 0) {
      return {};
    }
    std::vector<std::string> quoted;
    for (const auto& id : duplicate_ids_) {
      quoted.push_back(fmt::format("'{}'", id));
    }
    return fmt::format(
        "batch '{}': {} line{} reused a job id already in the batch and {} dropped (not run, no "
        "result): {}{}",
        id_, duplicates_, duplicates_ == 1 ? "" : "s", duplicates_ == 1 ? "was" : "were",
        fmt::join(quoted, ", "),
        duplicates_ > duplicate_ids_.size()
            ? fmt::format(" and {} more", duplicates_ - duplicate_ids_.size())
            : "");
  }

 private:
  // A line that is no job, and its result.
  struct Invalid {
    redis::Entry entry;  // no stream_id: nothing in the stream to acknowledge
    std::string error;
    std::string line;
  };

  // The invalid lines' results first: if adding the jobs then fails, what was stored is known.
  void flush() {
    if (!invalid_group_.empty()) {
      if (!recorder_) {
        recorder_ = std::make_unique<redis::Recorder>(pool_.redis(), kRedisTimeout);
      }
      std::vector<redis::Recorder::Result> results;
      results.reserve(invalid_group_.size());
      for (const auto& i : invalid_group_) {
        results.push_back({&i.entry, "invalid", i.error, i.line});
      }
      recorder_->record_many(results, pool_.cancel_all(), now_iso(), pool_.ttl());
      invalid_ += invalid_group_.size();
      invalid_group_.clear();
    }
    if (!group_.empty()) {
      store_.add_jobs(id_, group_, group_keys_);
      added_ += group_.size();
      group_.clear();
      group_keys_.clear();
    }
    group_bytes_ = 0;
  }

  void add_invalid(std::string_view job_id, std::string_view error) {
    Invalid i;
    i.entry.batch = id_;
    i.entry.id = std::string(job_id);
    i.error = std::string(error);
    batch::append_result_line(i.line, job_id, batch::JobStatus::kInvalid, 0, 0.0, error);
    i.line.pop_back();  // its '\n'
    group_bytes_ += i.line.size();
    invalid_group_.push_back(std::move(i));
  }

  void note_duplicate(std::string_view job_id) {
    if (duplicate_ids_.size() < kDuplicatesNamed) {
      duplicate_ids_.emplace_back(job_id);
    }
    ++duplicates_;
  }

  const RedisPool& pool_;
  redis::StreamStore& store_;
  const std::string id_;
  const batch::InputFormat format_;
  std::unordered_set<std::string> ids_;  // JSONL only: text ids are line numbers, all distinct
  std::vector<std::pair<std::string, std::string>> group_;
  std::vector<std::string> group_keys_;  // group_[i]'s key, "" for none
  std::vector<Invalid> invalid_group_;
  std::size_t group_bytes_ = 0;
  std::unique_ptr<redis::Recorder> recorder_;
  std::uint64_t added_ = 0;
  std::uint64_t invalid_ = 0;
  std::uint64_t duplicates_ = 0;
  std::vector<std::string> duplicate_ids_;
};

// After a failure midway through a submission, what was stored must not wait forever: the batch
// is cancelled (the daemons give its stored jobs `cancelled` results without running them) and
// its total set to what was stored, so that it ends and expires. Cancelled first: ended first, a
// batch whose stored jobs all had results would end `done`. Returns what became of it.
std::string abandon(const RedisPool& pool, std::unique_ptr<redis::StreamStore>& store,
                    const std::string& id, std::uint64_t stored) {
  try {
    if (!store->client().connected()) {
      store = pool.connect();
    }
    store->cancel(id);
    store->end_batch(id, stored, now_iso(), pool.ttl());
    return fmt::format("batch '{}' is cancelled ({} of its jobs had been stored)", id, stored);
  } catch (const redis::RedisError& e) {
    return fmt::format(
        "batch '{}' could not be cancelled either ({}): its record {} is left as it is", id,
        e.what(), redis::batch_key(id));
  }
}

std::string what_of(const RedisPool& pool, const std::exception& e) {
  if (const auto* r = dynamic_cast<const redis::RedisError*>(&e)) {
    return redis_problem(pool.name, pool.redis(), *r);
  }
  return fmt::format("pool '{}': {}", pool.name, e.what());
}

}  // namespace

void redis_control::submit_to_redis(const RedisPool& pool, const fs::path& tmp,
                                    const std::string& name, const std::function<bool()>& stopping,
                                    control::Connection& conn) {
  const auto refuse = [&](const std::string& why) {
    spdlog::warn("submitted batch '{}' not stored: {}", name, why);
    conn.write(error_reply(kRefused, why));
  };
  std::string why;
  const int fd = batch::open_batch_input(tmp, why);
  // Gone before any answer: the open descriptor reads it still, and a client that has its
  // answer finds no trace of the body.
  ::unlink(tmp.c_str());
  if (fd < 0) {
    refuse(fmt::format("pool '{}': cannot read the received batch {}: {}", pool.name, tmp.string(),
                       why));
    return;
  }
  struct stat st {};
  const auto bytes = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  batch::LineReader reader(fd, pool.settings->config.max_job_bytes, simdjson::SIMDJSON_PADDING);
  std::unique_ptr<redis::StreamStore> store;
  std::string id;
  try {
    store = pool.connect();
    id = store->begin_batch(wanted_id(name), pool.name, pool.cancel_all(), now_iso());
  } catch (const redis::RedisError& e) {
    refuse(redis_problem(pool.name, pool.redis(), e));
    return;
  }
  RedisSubmission submission(pool, *store, id, name);
  try {
    submission.run(reader, stopping);
    store->end_batch(id, submission.stored(), now_iso(), pool.ttl());
  } catch (const std::exception& e) {
    const auto why_failed = what_of(pool, e);
    const auto outcome = abandon(pool, store, id, submission.stored());
    spdlog::error("submitted batch '{}' not stored: {}; {}", name, why_failed, outcome);
    conn.write(error_reply(kRefused, fmt::format("{}; {}", why_failed, outcome)));
    return;
  }
  control::SubmitReply reply{id, pool.name, {}};
  if (auto warning = submission.duplicates_warning(); !warning.empty()) {
    spdlog::warn("pool '{}': {}", pool.name, warning);
    reply.warnings.push_back(std::move(warning));
  }
  spdlog::info("pool '{}': batch '{}' submitted to redis {}:{} ({} jobs, {} invalid, {} bytes)",
               pool.name, id, pool.redis().host, pool.redis().port, submission.stored(),
               submission.invalid(), bytes);
  conn.write(control::to_line(reply));
}

}  // namespace barista::runtime
