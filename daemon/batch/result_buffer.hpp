#pragma once

#include "daemon/batch/job_counters.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace barista::batch {

/// A job's final status, as written in results.jsonl.
enum class JobStatus { kOk, kFailed, kTimeout, kCancelled, kInvalid };
std::string_view to_string(JobStatus status);
/// Parses a status word; nullopt when unknown.
std::optional<JobStatus> parse_status(std::string_view word);
/// failed, timeout and invalid are failures; ok and cancelled are not.
constexpr bool is_failure(JobStatus s) {
  return s == JobStatus::kFailed || s == JobStatus::kTimeout || s == JobStatus::kInvalid;
}

/// Counts of results by status.
struct Counts {
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::uint64_t timeout = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t invalid = 0;
  [[nodiscard]] std::uint64_t total() const { return ok + failed + timeout + cancelled + invalid; }
  void add(JobStatus s);
  void add(const Counts& other);
};

/// The first failure of a batch.
struct FirstError {
  std::string id;
  std::string error;
};

/// Appends one results.jsonl line (with its '\n'): the one place its shape is written.
/// `throttled`: how many of the attempts were throttled ("throttled": N when N > 0).
void append_result_line(std::string& out, std::string_view id, JobStatus status, int attempts,
                        double ms, std::string_view text, int throttled = 0);

/// Results of one batch recorded by one worker and not yet handed to the batch: a worker hands
/// a chunk's results over in one step (Batch::commit), so that workers meet on the batch's lock
/// and on the pool's metric counters once per chunk rather than once per job.
class ResultBuffer {
 public:
  void add(std::string_view id, JobStatus status, int attempts, double ms, std::string_view text,
           int throttled = 0);
  [[nodiscard]] std::uint64_t size() const noexcept { return jobs_; }
  [[nodiscard]] bool empty() const noexcept { return jobs_ == 0; }
  void clear();

 private:
  friend class Batch;
  std::string lines_;
  Counts counts_;
  std::optional<FirstError> first_error_;
  JobTally tally_;
  std::uint64_t jobs_ = 0;
};

}  // namespace barista::batch
