#pragma once

/// @file processor.hpp
/// The interface a plugin implements.

#include <barista/context.hpp>
#include <barista/job.hpp>
#include <barista/outcome.hpp>

namespace barista {

/// Processes jobs. The daemon creates one instance per worker through the plugin's factory, so
/// an instance is never called from two threads at once; distinct instances may run in parallel.
///
/// `process()` may throw: the exception's `what()` becomes the attempt's error (a retryable
/// failure). It should return promptly once `ctx.cancelled()` is true or `ctx.deadline()` has
/// passed; a processor that overruns its deadline by more than a second is abandoned.
class Processor {
 public:
  Processor() = default;
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;
  Processor(Processor&&) = delete;
  Processor& operator=(Processor&&) = delete;
  virtual ~Processor() = default;

  /// Runs one attempt of `job`.
  virtual Outcome process(Context& ctx, const Job& job) = 0;
};

}  // namespace barista
