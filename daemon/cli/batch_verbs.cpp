// barista cancel ID, barista results ID [--summary]
#include "daemon/cli/cli_error.hpp"
#include "daemon/cli/client.hpp"
#include "daemon/cli/verbs.hpp"

#include <unistd.h>

#include <memory>

namespace barista::cli {
namespace {

constexpr auto kAnswerTimeout = std::chrono::seconds(30);

int run_cancel(const GlobalOptions& globals, const std::string& id) {
  ControlClient client(socket_of(globals));
  client.set_read_timeout(kAnswerTimeout);
  client.send_request(request_json("cancel", {{"batch", id}}));
  std::string line;
  expect_ok(client, line, "cancel");
  write_all(STDOUT_FILENO, "batch '" + id + "' cancelled\n");
  return kExitOk;
}

int run_results(const GlobalOptions& globals, const std::string& id, bool summary) {
  ControlClient client(socket_of(globals));
  client.set_read_timeout(kAnswerTimeout);
  std::string request = request_json("results", {{"batch", id}});
  request.insert(request.size() - 1, summary ? R"(,"summary":true)" : R"(,"summary":false)");
  client.send_request(request);
  std::string line;
  expect_ok(client, line, "results");
  // The rest is the file's bytes as they are (results.jsonl, or the summary line).
  client.copy_rest_to(STDOUT_FILENO);
  return kExitOk;
}

}  // namespace

void add_cancel(CLI::App& app, const GlobalOptions& globals, Action& action) {
  auto id = std::make_shared<std::string>();
  auto* cmd = add_verb(
      app, "cancel", "Cancel a batch",
      "No further job of the batch starts, its running jobs are told to stop, every job without "
      "a result gets `cancelled`, and the batch ends in failed/ as cancelled.\n"
      "Exit: 0 cancelled; 1 unknown (or already finished) batch; 3 no daemon.");
  cmd->add_option("ID", *id,
                  "the batch id (as `submit` printed it), or POOL/ID when pools share ids")
      ->required();
  cmd->callback(
      [&action, &globals, id] { action = [&globals, id] { return run_cancel(globals, *id); }; });
}

void add_results(CLI::App& app, const GlobalOptions& globals, Action& action) {
  auto id = std::make_shared<std::string>();
  auto summary = std::make_shared<bool>(false);
  auto* cmd = add_verb(app, "results", "Print a batch's results (or its summary)",
                       "Prints the batch's results.jsonl lines recorded so far: the batch may "
                       "still be running.\nExit: 0; 1 unknown batch; 3 no daemon.");
  cmd->add_option("ID", *id, "the batch id, or POOL/ID when pools share ids")->required();
  cmd->add_flag("--summary", *summary,
                "print the batch's summary.json instead (for a running batch: the counts so far, "
                "with \"state\":\"running\")");
  cmd->callback([&action, &globals, id, summary] {
    action = [&globals, id, summary] { return run_results(globals, *id, *summary); };
  });
}

}  // namespace barista::cli
