#pragma once

/// @file outcome.hpp
/// What a processor returns for one attempt.

#include <string>
#include <utility>

namespace barista {

/// The result of one attempt: success with an output, a retryable failure, or a fatal failure.
class Outcome {
 public:
  /// How the attempt ended.
  enum class Kind {
    kOk,      ///< success; `text()` is the output
    kFailed,  ///< failure the pool may retry; `text()` is the error
    kFatal,   ///< failure that is never retried; `text()` is the error
  };

  /// Success with the job's output (may be empty).
  static Outcome ok(std::string output = {}) { return Outcome(Kind::kOk, std::move(output)); }
  /// A failure that is retried up to the pool's `retries`.
  static Outcome fail(std::string error) { return Outcome(Kind::kFailed, std::move(error)); }
  /// A failure that is never retried.
  static Outcome fatal(std::string error) { return Outcome(Kind::kFatal, std::move(error)); }

  /// How the attempt ended.
  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  /// True for `ok()`.
  [[nodiscard]] bool is_ok() const noexcept { return kind_ == Kind::kOk; }
  /// The output (for `ok`) or the error (for `fail` and `fatal`).
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  /// Moves the output or error out.
  [[nodiscard]] std::string take_text() noexcept { return std::move(text_); }

 private:
  Outcome(Kind kind, std::string text) : kind_(kind), text_(std::move(text)) {}
  Kind kind_;
  std::string text_;
};

}  // namespace barista
