#include "daemon/cli/verbs.hpp"

#include <cstdlib>

namespace barista::cli {

std::filesystem::path socket_of(const GlobalOptions& globals) {
  // The CLI reads its environment on its one thread, before it starts any other.
  return resolve_socket(globals, std::getenv("BARISTA_SOCKET"));  // NOLINT(concurrency-mt-unsafe)
}

CLI::App* add_verb(CLI::App& app, const std::string& name, const std::string& summary,
                   const std::string& details) {
  auto* cmd = app.add_subcommand(name, summary);
  cmd->footer(details +
              "\n\nGlobal options, before or after the verb: --socket PATH, --config FILE (the "
              "socket is --socket, else $BARISTA_SOCKET, else the control_socket of --config, "
              "else /run/barista/barista.sock).");
  // Unknown options go up to barista itself: `barista status --socket S` works.
  cmd->fallthrough();
  return cmd;
}

}  // namespace barista::cli
