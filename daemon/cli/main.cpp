// barista: the control CLI. Each verb is a subcommand set up by its own add_*() function, which
// registers what to run once the command line has been parsed.

#include "daemon/runtime/check_config.hpp"

#include <barista/abi.hpp>

#include <CLI/CLI.hpp>

#include <functional>
#include <iostream>
#include <memory>
#include <string>

namespace {

/// What main() runs after parsing; returns the exit code.
using Action = std::function<int()>;

/// Usage errors exit with EX_USAGE (sysexits.h), apart from the codes 0-3 that the verbs give
/// meaning to (`submit --wait` exits 2 for a cancelled batch).
constexpr int kUsageExit = 64;

void add_check_config(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand(
      "check-config",
      "Validate a config file: parse it, load every plugin, create one processor per pool. "
      "Prints FILE: ok (exit 0) or each error as FILE:LINE:COL: message (exit 1).");
  auto file = std::make_shared<std::string>();
  cmd->add_option("FILE", *file, "the config file")->required();
  cmd->callback([&action, file] {
    action = [file] { return barista::runtime::run_check_config(*file, std::cout, std::cerr); };
  });
}

std::string version_text() {
  return std::string("barista ") + BARISTA_VERSION + " (SDK ABI " +
         std::to_string(barista::kSdkAbi) + ")";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"barista: control a running baristad and check its configuration", "barista"};
  app.set_version_flag("--version", version_text(), "Print the version and the SDK ABI");
  app.require_subcommand(1);

  // The daemon-facing verbs (submit, status, cancel, reload, results) join here, each with its
  // add_*() function, together with the global --socket and --config they share.
  Action action;
  add_check_config(app, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kUsageExit;
  }
  return action ? action() : kUsageExit;
}
