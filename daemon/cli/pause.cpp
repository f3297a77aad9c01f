// barista pause POOL [--key K], barista resume POOL [--key K]
#include "daemon/cli/cli_error.hpp"
#include "daemon/cli/client.hpp"
#include "daemon/cli/verbs.hpp"

#include <unistd.h>

#include <memory>
#include <optional>
#include <string>

namespace barista::cli {
namespace {

constexpr auto kAnswerTimeout = std::chrono::seconds(30);

int run_pause(const GlobalOptions& globals, bool pause, const std::string& pool,
              const std::optional<std::string>& key) {
  ControlClient client(socket_of(globals));
  client.set_read_timeout(kAnswerTimeout);
  const char* verb = pause ? "pause" : "resume";
  client.send_request(key ? request_json(verb, {{"pool", pool}, {"key", *key}})
                          : request_json(verb, {{"pool", pool}}));
  std::string line;
  expect_ok(client, line, verb);
  const std::string what =
      key ? "key '" + *key + "' of pool '" + pool + "'" : "pool '" + pool + "'";
  write_all(STDOUT_FILENO, what + (pause ? " paused\n" : " resumed\n"));
  return kExitOk;
}

void add_pause_verb(CLI::App& app, const GlobalOptions& globals, Action& action, bool pause) {
  auto pool = std::make_shared<std::string>();
  auto key = std::make_shared<std::string>();
  auto* cmd = add_verb(
      app, pause ? "pause" : "resume",
      pause ? "Start nothing new in a pool (or for one key of it)"
            : "Lift a pause of a pool (or of one key of it)",
      pause ? "No new attempt of the pool (with --key, of jobs with that key) starts; running "
              "attempts finish, and jobs keep arriving. The pause outlives a reload and a "
              "restart, until `barista resume`. `barista status` lists paused pools and keys.\n"
              "Exit: 0 paused; 1 unknown pool, or a key that is empty or longer than 256 "
              "bytes; 3 no daemon."
            : "What waited starts again.\nExit: 0 resumed; 1 unknown pool, or a key that is "
              "not paused; 3 no daemon.");
  cmd->add_option("POOL", *pool, "the pool's name")->required();
  auto* key_option = cmd->add_option("--key", *key, "only jobs with this key");
  cmd->callback([&action, &globals, pool, key, key_option, pause] {
    const std::optional<std::string> k =
        key_option->count() > 0 ? std::optional<std::string>(*key) : std::nullopt;
    action = [&globals, pool, k, pause] { return run_pause(globals, pause, *pool, k); };
  });
}

}  // namespace

void add_pause(CLI::App& app, const GlobalOptions& globals, Action& action) {
  add_pause_verb(app, globals, action, true);
  add_pause_verb(app, globals, action, false);
}

}  // namespace barista::cli
