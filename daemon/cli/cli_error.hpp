#pragma once

#include <stdexcept>
#include <string>

namespace barista::cli {

/// The exit codes the verbs give meaning to (docs/reference.md#exit-codes).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;     ///< some failure, unknown batch, rejected reload
inline constexpr int kExitCancelled = 2;  ///< `submit --wait`: the batch was cancelled
inline constexpr int kExitRefused = 3;    ///< refused, no daemon, unreadable input
/// Usage errors exit with EX_USAGE (sysexits.h), apart from the codes the verbs use.
inline constexpr int kExitUsage = 64;

/// Ends the command: main() prints `barista: WHAT` on stderr and exits with `code`.
class CliError : public std::runtime_error {
 public:
  CliError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

}  // namespace barista::cli
