#pragma once

/// @file job.hpp
/// One unit of work handed to a processor.

#include <string_view>

namespace barista {

/// A job as the processor sees it. The views stay valid for the duration of `process()` only:
/// copy what you need to keep.
struct Job {
  std::string_view id;       ///< the job's id within its batch (always text)
  std::string_view payload;  ///< the job's input
  int attempt = 1;           ///< 1 for the first attempt, 2 for the first retry, ...
  /// The job's key (its JSONL line's "key", or its URL host under `key: url_host`); empty when
  /// it has none. Needs a baristad of SDK 1.2 or later (an older one does not pass it).
  std::string_view key{};
};

}  // namespace barista
