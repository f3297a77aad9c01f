#pragma once

#include "daemon/cli/socket_path.hpp"

#include <CLI/CLI.hpp>

#include <functional>

namespace barista::cli {

/// What main() runs once the command line is parsed; returns the exit code.
using Action = std::function<int()>;

// Each verb is a subcommand of `app`; its callback sets `action`. `globals` is filled by the
// parse (--socket, --config) and read when the action runs.
void add_submit(CLI::App& app, const GlobalOptions& globals, Action& action);
void add_status(CLI::App& app, const GlobalOptions& globals, Action& action);
void add_cancel(CLI::App& app, const GlobalOptions& globals, Action& action);
void add_results(CLI::App& app, const GlobalOptions& globals, Action& action);
void add_reload(CLI::App& app, const GlobalOptions& globals, Action& action);
/// `pause` and `resume`.
void add_pause(CLI::App& app, const GlobalOptions& globals, Action& action);

/// The socket the verbs talk to (see resolve_socket()).
std::filesystem::path socket_of(const GlobalOptions& globals);

/// A verb: `summary` in `barista --help`, `details` (what it prints, its exit codes) at the end
/// of `barista VERB --help`. The global options may follow it.
CLI::App* add_verb(CLI::App& app, const std::string& name, const std::string& summary,
                   const std::string& details);

}  // namespace barista::cli
