#pragma once

#include <barista/outcome.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace barista::plugin {

/// A job of a frame: several jobs handed to a worker process at once (docs/workers.md#frames).
struct FrameJob {
  std::string_view id;
  std::string_view payload;
  std::string_view key;
};

/// What became of a job of a frame.
struct FrameResult {
  enum class Kind {
    kDone,     ///< it ran: `outcome`, in `elapsed`
    kSkipped,  ///< it never started: the frame was cancelled before it
    kLost,     ///< the worker process broke down before its result came back
  };
  Kind kind = Kind::kLost;
  Outcome outcome = Outcome::ok();
  std::chrono::microseconds elapsed{0};
};

/// How a frame runs: its batch's cancellation, and each job's timeout (from its own start).
struct FrameRun {
  const std::atomic<bool>* cancel = nullptr;
  std::optional<std::chrono::milliseconds> timeout;
};

/// A processor that can also take several jobs at once, in the order given, each run as a
/// first attempt (a pool with `isolation: process`: one message to its worker process for the
/// lot, and its results back together, rather than a round trip a job). The engine uses it
/// for jobs nothing holds back one by one (no key limits, no rate); see Pool::run_frame.
class FrameProcessor {
 public:
  FrameProcessor() = default;
  FrameProcessor(const FrameProcessor&) = delete;
  FrameProcessor& operator=(const FrameProcessor&) = delete;
  virtual ~FrameProcessor() = default;

  /// False when this one takes a job at a time only (a `plugin: exec` program).
  [[nodiscard]] virtual bool takes_frames() const noexcept = 0;

  /// Runs `jobs`; `out` gets one result for each, in order. Jobs in flight when the worker
  /// broke down are kLost, and `lost_why` says how it broke down. Never throws for the
  /// worker's faults.
  virtual void process_frame(std::span<const FrameJob> jobs, const FrameRun& run,
                             std::vector<FrameResult>& out, std::string& lost_why) = 0;
};

}  // namespace barista::plugin
