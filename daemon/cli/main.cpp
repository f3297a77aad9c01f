// barista: the control CLI. Each verb is a subcommand set up by its own add_*() function, which
// registers what to run once the command line has been parsed.

#include "daemon/cli/cli_error.hpp"
#include "daemon/cli/verbs.hpp"
#include "daemon/runtime/check_config.hpp"

#include <barista/abi.hpp>

#include <CLI/CLI.hpp>

#include <functional>
#include <iostream>
#include <memory>
#include <string>

namespace {

using barista::cli::Action;

void add_check_config(CLI::App& app, Action& action) {
  auto* cmd =
      app.add_subcommand("check-config", "Validate a config file as baristad --check-config does");
  cmd->footer(
      "Parses the file, loads every plugin and creates one processor per pool. Prints FILE: ok "
      "(exit 0) or each error as FILE:LINE:COL: message on stderr (exit 1).");
  auto file = std::make_shared<std::string>();
  cmd->add_option("FILE", *file, "the config file")->required();
  cmd->fallthrough();
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

  // Options of every verb, accepted before or after it (the subcommands fall through to here).
  barista::cli::GlobalOptions globals;
  app.add_option("--socket", globals.socket,
                 "baristad's control socket (default: $BARISTA_SOCKET, else the control_socket of "
                 "--config, else /run/barista/barista.sock)")
      ->type_name("PATH");
  app.add_option("--config", globals.config, "a baristad config file whose control_socket to use")
      ->type_name("FILE");

  Action action;
  barista::cli::add_submit(app, globals, action);
  barista::cli::add_status(app, globals, action);
  barista::cli::add_cancel(app, globals, action);
  barista::cli::add_results(app, globals, action);
  barista::cli::add_reload(app, globals, action);
  add_check_config(app, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : barista::cli::kExitUsage;
  }
  if (!action) {
    return barista::cli::kExitUsage;
  }
  try {
    return action();
  } catch (const barista::cli::CliError& e) {
    std::cout.flush();
    std::cerr << "barista: " << e.what() << '\n';
    return e.code();
  }
}
