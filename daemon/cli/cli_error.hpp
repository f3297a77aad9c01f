#pragma once

#include "daemon/control/exit_codes.hpp"

#include <stdexcept>
#include <string>

namespace barista::cli {

/// The exit codes the verbs give meaning to, shared with baristad's error replies.
using control::kExitCancelled;
using control::kExitFailed;
using control::kExitOk;
using control::kExitRefused;
using control::kExitUnknown;
using control::kExitUsage;

/// Ends the command: main() prints `barista: WHAT` on stderr and exits with `code`.
class CliError : public std::runtime_error {
 public:
  CliError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

}  // namespace barista::cli
