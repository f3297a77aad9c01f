#pragma once

// Frames (docs/workers.md#frames): how baristad hands several jobs at once to barista-worker,
// and reads their results back, for a pool with `isolation: process`. A frame is a header line
// and a binary body, so that ids and payloads travel as they are, with no escaping:
//
//   to the worker:  "frame COUNT BYTES\n" then, per job: u32 id, u32 payload, u32 key lengths,
//                   i64 deadline_ms (-1: none), then the id, payload and key bytes
//   from it:        "results COUNT BYTES\n" then, per job in order: u8 status (ok, fail, fatal,
//                   throttle, skipped), u32 retry_after_ms, u64 elapsed_us, u32 text length, the
//                   text. A frame's results may come in several such messages.
//   cancelling:     {"cancel_frame":"running"} stops the job running; {"cancel_frame":"rest"}
//                   that one and those after it (each answered "skipped").
//
// Integers are in the byte order of the machine: both ends run on it.

#include "daemon/isolation/exec_protocol.hpp"
#include "daemon/plugin/frames.hpp"

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace barista::isolation {

/// The most jobs a frame holds.
inline constexpr std::size_t kMaxFrameJobs = 4096;

/// A frame's header line and body, ready to write; each job's deadline is `timeout`.
std::string frame_message(std::span<const plugin::FrameJob> jobs,
                          std::optional<std::chrono::milliseconds> timeout);

/// "frame COUNT BYTES" or "results COUNT BYTES": `word` the first; nullopt when `line` is not
/// such a header (or COUNT is 0 or above kMaxFrameJobs, or BYTES above kMaxLineBytes).
struct FrameHeader {
  std::size_t count = 0;
  std::size_t bytes = 0;
};
std::optional<FrameHeader> parse_frame_header(std::string_view line, std::string_view word);

/// Decodes a frame's body into `count` jobs (appended to `out`); false, with `why`, when the
/// body does not hold exactly that.
bool decode_frame(std::string_view body, std::size_t count, std::vector<JobMessage>& out,
                  std::string& why);

/// Appends one job's result to a results body.
void append_result(std::string& body, const plugin::FrameResult& result);
/// A results message: its header line and `body` of `count` results.
std::string results_message(std::size_t count, std::string_view body);
/// Decodes a results body of `count` results (appended to `out`); false, with `why`, when the
/// body does not hold exactly that.
bool decode_results(std::string_view body, std::size_t count, std::vector<plugin::FrameResult>& out,
                    std::string& why);

/// {"cancel_frame":"running"} or, with `rest`, {"cancel_frame":"rest"}.
std::string cancel_frame_message(bool rest);

}  // namespace barista::isolation
