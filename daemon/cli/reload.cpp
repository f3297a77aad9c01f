// barista reload
#include "daemon/cli/cli_error.hpp"
#include "daemon/cli/client.hpp"
#include "daemon/cli/verbs.hpp"

#include <unistd.h>

#include <fmt/format.h>

namespace barista::cli {
namespace {

int run_reload(const GlobalOptions& globals) {
  // No read timeout: a reload loads plugins and makes processors, which takes what it takes.
  ControlClient client(socket_of(globals));
  client.send_request(request_json("reload", {}));
  const auto line = client.read_line();
  if (!line) {
    throw CliError(kExitRefused, fmt::format("baristad at {} closed the connection before the "
                                             "reload ended",
                                             client.socket().string()));
  }
  const auto json = parse_reply(*line);
  const auto reply = control::read_reload(json);
  const auto generation = reply.generation;
  if (reply.ok) {
    std::string out = fmt::format("reload applied: config generation {}{}\n", generation,
                                  reply.changes.empty() ? " (no changes)" : "");
    for (const auto& change : reply.changes) {
      out += "  " + change + '\n';
    }
    write_all(STDOUT_FILENO, out);
    return kExitOk;
  }
  const auto& errors = reply.errors;
  if (errors.empty()) {
    check_ok(json);  // a plain error reply: its code and message
  }
  // The errors as `FILE:LINE:COL: message` lines, one each, as check-config prints them.
  // (No generation: the daemon was stopping and did not run the reload at all.)
  std::string err =
      generation > 0
          ? fmt::format("barista: reload rejected; baristad keeps running config generation {}:\n",
                        generation)
          : std::string("barista: reload not applied:\n");
  for (const auto& e : errors) {
    err += e + '\n';
  }
  write_all(STDERR_FILENO, err);
  return reply.code == kExitOk ? kExitFailed : reply.code;
}

}  // namespace

void add_reload(CLI::App& app, const GlobalOptions& globals, Action& action) {
  auto* cmd = add_verb(
      app, "reload", "Make baristad reload its config file and wait for the outcome",
      "Prints what changed (stdout); a rejected config prints why, as FILE:LINE:COL: message "
      "lines on stderr, and the old config keeps running.\n"
      "Exit: 0 applied; 1 rejected; 3 no daemon.");
  cmd->callback([&action, &globals] { action = [&globals] { return run_reload(globals); }; });
}

}  // namespace barista::cli
