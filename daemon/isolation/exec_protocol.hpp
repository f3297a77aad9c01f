#pragma once

// The exec protocol (docs/workers.md#the-exec-protocol): how baristad talks to a worker
// process, a program of the user's (`plugin: exec`) or barista-worker hosting a plugin
// (`isolation: process`). One JSON object a line, UTF-8, one job at a time.
//
//   to the worker:   {"id":"17","payload":"…","attempt":1,"key":"example.org","deadline_ms":29500}
//                    {"cancel":"17"}
//   from it:         {"id":"17","status":"ok","output":"…"}
//                    {"id":"17","status":"fail","error":"…"}       retryable
//                    {"id":"17","status":"fatal","error":"…"}      never retried
//                    {"id":"17","status":"throttle","retry_after_ms":1000,"error":"…"}

#include <barista/outcome.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace barista::isolation {

/// The longest line a worker may write (a result with its output); a longer one is a protocol
/// error: the worker is restarted and its job charged a crash.
inline constexpr std::size_t kMaxLineBytes = 16U << 20;

/// A job as the worker reads it. `key` and `deadline_ms` are left out when absent. Bytes of
/// the payload that are not UTF-8 are sent as U+FFFD.
std::string job_message(std::string_view id, std::string_view payload, int attempt,
                        std::string_view key, std::optional<std::chrono::milliseconds> left);

/// Asks the worker to stop job `id`.
std::string cancel_message(std::string_view id);

/// A job as a worker host reads it back (job_message's fields).
struct JobMessage {
  std::string id;
  std::string payload;
  int attempt = 1;
  std::string key;
  std::optional<std::chrono::milliseconds> deadline;
};
/// A line read by a worker: a job, or a cancellation (of `cancel`), or a frame's cancellation
/// (frames.hpp; `cancel_frame`: true when the rest of the frame is cancelled too).
struct InboundMessage {
  std::optional<JobMessage> job;
  std::optional<std::string> cancel;
  std::optional<bool> cancel_frame;
};
/// Parses a line sent to a worker; nullopt, with `why`, when it is neither message.
std::optional<InboundMessage> parse_inbound(std::string_view line, std::string& why);

/// A result line as the daemon reads it.
struct ResultMessage {
  std::string id;
  Outcome outcome = Outcome::ok();
};
/// Parses a line a worker wrote; nullopt, with `why` (for the log and the job's crash), when it
/// is not a result: not JSON, not UTF-8, not an object, no string "id", an unknown "status", a
/// "retry_after_ms" that is not a number.
std::optional<ResultMessage> parse_result(std::string_view line, std::string& why);

/// The line a worker writes for `outcome` of job `id`.
std::string result_message(std::string_view id, const Outcome& outcome);

}  // namespace barista::isolation
