// barista: the control CLI. Each verb is a subcommand set up by its own add_*() function, which
// registers what to run once the command line has been parsed.

#include "daemon/cli/cli_error.hpp"
#include "daemon/cli/verbs.hpp"

#include "daemon/common/error_text.hpp"

#include <barista/abi.hpp>

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <system_error>

namespace {

using barista::cli::Action;

// `barista check-config FILE` is `baristad --check-config --config=FILE`, run in this process's
// place: the baristad installed beside this barista, else the first on PATH. Loading plugins
// (and the libraries that takes) stays out of the CLI, whose start every other verb waits for.
int exec_check_config(const std::string& file) {
  std::error_code ec;
  const auto beside =
      std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "baristad";
  std::string program = !ec && ::access(beside.c_str(), X_OK) == 0 ? beside.string() : "baristad";
  std::string flag = "--check-config";
  std::string config = "--config=" + file;
  char* argv[] = {program.data(), flag.data(), config.data(), nullptr};
  std::cout.flush();
  ::execvp(program.c_str(), argv);
  throw barista::cli::CliError(
      barista::cli::kExitRefused,
      "cannot run " + program + " --check-config: " + barista::common::error_text(errno));
}

void add_check_config(CLI::App& app, Action& action) {
  auto* cmd =
      app.add_subcommand("check-config", "Validate a config file as baristad --check-config does");
  cmd->footer(
      "Parses the file, loads every plugin and creates one processor per pool. Prints FILE: ok "
      "(exit 0) or each error as FILE:LINE:COL: message on stderr (exit 1).");
  auto file = std::make_shared<std::string>();
  cmd->add_option("FILE", *file, "the config file")->required();
  cmd->fallthrough();
  cmd->callback([&action, file] { action = [file] { return exec_check_config(*file); }; });
}

std::string version_text() {
  return std::string("barista ") + BARISTA_VERSION + " (SDK ABI " +
         std::to_string(barista::kSdkAbi) + ")";
}

}  // namespace

namespace {

int run(int argc, char** argv) {
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
  barista::cli::add_pause(app, globals, action);
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

}  // namespace

int main(int argc, char** argv) {
  // What run() does not catch itself (a failed write to a closed stdout, say) ends here, said.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "barista: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "barista: unexpected error\n";
  }
  return barista::cli::kExitFailed;
}
