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
};

}  // namespace barista
