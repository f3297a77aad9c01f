#pragma once

#include "daemon/batch/result_buffer.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace barista::batch {

/// A batch's summary, wherever it is kept (a spool batch's summary.json, a Redis batch record,
/// a running batch's counts so far), and its one serialiser (docs/reference.md#summary).
struct Summary {
  std::string batch;
  std::string pool;
  std::string state;       ///< done | cancelled | running
  std::uint64_t jobs = 0;  ///< the batch's jobs (of a running one: those known so far)
  Counts counts;
  /// With the first error and the times: every ended batch, and a Redis batch while it runs.
  /// Without: a running spool batch, which says instead whether `jobs` is final (read_all).
  bool timed = true;
  std::optional<FirstError> first_error;
  std::string started;                  ///< ISO 8601 UTC
  std::optional<std::string> finished;  ///< ISO 8601 UTC; null while it runs
  std::optional<double> seconds;        ///< from started to finished; null while it runs
  std::optional<bool> read_all;

  /// One JSON object on one line, with its '\n'.
  [[nodiscard]] std::string json() const;
};

}  // namespace barista::batch
