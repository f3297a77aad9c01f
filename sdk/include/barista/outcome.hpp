#pragma once

/// @file outcome.hpp
/// What a processor returns for one attempt.

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

namespace barista {

/// The result of one attempt: success with an output, a retryable failure, a fatal failure, or
/// a throttle (the remote side asked to be left alone for a while).
class Outcome {
 public:
  /// How the attempt ended.
  enum class Kind {
    kOk,      ///< success; `text()` is the output
    kFailed,  ///< failure the pool may retry; `text()` is the error
    kFatal,   ///< failure that is never retried; `text()` is the error
    /// Not a failure and no retry: the job runs again after `retry_after()`, and no attempt of
    /// its key (of the whole pool, for a job without a key) starts before then. `text()` is why.
    kThrottled,
  };

  /// Success with the job's output (may be empty).
  static Outcome ok(std::string output = {}) { return Outcome(Kind::kOk, std::move(output)); }
  /// A failure that is retried up to the pool's `retries`.
  static Outcome fail(std::string error) { return Outcome(Kind::kFailed, std::move(error)); }
  /// A failure that is never retried.
  static Outcome fatal(std::string error) { return Outcome(Kind::kFatal, std::move(error)); }

  /// Asks to run the job again after `retry_after` (up to 49 days; capped by the pool's
  /// `max_throttled`), and to start nothing of its key before then: a rate limit met (HTTP 429),
  /// an overloaded server. Zero (or negative) lets the pool choose: its `backoff`, doubling with
  /// each throttle of the key in a row, up to `max_backoff`. Spends no retry. Needs a baristad of
  /// SDK 1.1 or later.
  static Outcome throttle(std::chrono::milliseconds retry_after, std::string why) {
    Outcome o(Kind::kThrottled, std::move(why));
    const auto ms = retry_after.count();
    o.retry_ms_ = ms <= 0 ? 0
                  : ms >= std::numeric_limits<std::uint32_t>::max()
                      ? std::numeric_limits<std::uint32_t>::max()
                      : static_cast<std::uint32_t>(ms);
    return o;
  }

  /// How the attempt ended.
  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  /// For `throttle()`: how long the job's key is to wait; zero otherwise.
  [[nodiscard]] std::chrono::milliseconds retry_after() const noexcept {
    return kind_ == Kind::kThrottled ? std::chrono::milliseconds(retry_ms_)
                                     : std::chrono::milliseconds(0);
  }
  /// True for `ok()`.
  [[nodiscard]] bool is_ok() const noexcept { return kind_ == Kind::kOk; }
  /// The output (for `ok`) or the error (for `fail` and `fatal`).
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  /// Moves the output or error out.
  [[nodiscard]] std::string take_text() noexcept { return std::move(text_); }

 private:
  Outcome(Kind kind, std::string text) : kind_(kind), text_(std::move(text)) {}
  Kind kind_;
  // In the padding between kind_ and text_: the layout (and so SDK ABI 1) is what it was before
  // throttle() existed, and a plugin built without it, which never sets it, still loads.
  std::uint32_t retry_ms_ = 0;
  std::string text_;
};

static_assert(sizeof(Outcome) == 8 + sizeof(std::string), "Outcome's layout is part of ABI 1");

}  // namespace barista
