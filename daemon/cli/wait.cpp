#include "daemon/cli/wait.hpp"

#include "daemon/cli/cli_error.hpp"
#include "daemon/cli/client.hpp"
#include "daemon/cli/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

namespace barista::cli {
namespace {

// Progress lines come every 200 ms: this long without one means the daemon is stuck or gone.
constexpr auto kSilenceLimit = std::chrono::seconds(30);

std::uint64_t count_of(const Json& obj, std::string_view key) {
  return value_or<std::uint64_t>(obj, key, 0);
}

// The summary as the daemon sent it (control::summary_line). Cut out rather than
// re-serialised, so that it is byte for byte the batch's summary.json.
std::string summary_text(const std::string& line, const Json& summary) {
  constexpr auto kPrefix = control::kSummaryLinePrefix;
  if (line.starts_with(kPrefix) && line.ends_with('}')) {
    return line.substr(kPrefix.size(), line.size() - kPrefix.size() - 1);
  }
  return summary.dump();
}

int exit_code_of(const Json& summary) {
  if (value_or<std::string_view>(summary, "state", "") == "cancelled") {
    return kExitCancelled;
  }
  const auto failures =
      count_of(summary, "failed") + count_of(summary, "timeout") + count_of(summary, "invalid");
  return failures > 0 ? kExitFailed : kExitOk;
}

// What an interrupted --wait leaves on the terminal: the bar erased, and a word that the batch
// goes on. Prepared beforehand: the handler may only call async-signal-safe functions.
char g_interrupted_text[512];
std::size_t g_interrupted_size = 0;

void on_interrupt(int sig) {
  (void)!::write(STDERR_FILENO, g_interrupted_text, g_interrupted_size);
  ::raise(sig);  // SA_RESETHAND restored the default action: the exit status says "interrupted"
}

void tidy_up_on_interrupt(const std::string& id) {
  const auto text = fmt::format("\r\x1b[Kbarista: stopped waiting; batch '{}' keeps running\n", id);
  g_interrupted_size = std::min(text.size(), sizeof g_interrupted_text);
  std::memcpy(g_interrupted_text, text.data(), g_interrupted_size);
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
    ::sigaction(sig, &action, nullptr);
  }
}

// The daemon could not be reached, or went away, or said it stops: worth asking again.
class Unreachable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// How long the daemon may stay unreachable before the wait gives up with exit 4:
// $BARISTA_RECONNECT_FOR seconds, else a minute (a restart by systemd takes a few seconds).
std::chrono::milliseconds reconnect_window() {
  // The CLI reads its environment on its one thread. NOLINTNEXTLINE(concurrency-mt-unsafe)
  const char* text = std::getenv("BARISTA_RECONNECT_FOR");
  double seconds = 60;
  if (text != nullptr) {
    char* end = nullptr;
    const double v = std::strtod(text, &end);
    if (end != text && *end == '\0' && v >= 0) {
      seconds = v;
    }
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

// One wait on one connection: the summary's exit code, or Unreachable.
int wait_once(const std::filesystem::path& socket, const std::string& pool, const std::string& id,
              bool show_progress, std::optional<std::uint64_t> expected_jobs) {
  std::optional<ControlClient> client;
  try {
    client.emplace(socket);
    client->set_read_timeout(kSilenceLimit);
    // Named with its pool: another pool may hold a batch with the same id.
    client->send_request(request_json("wait", {{"batch", pool + "/" + id}}));
  } catch (const CliError& e) {
    throw Unreachable(e.what());
  }
  std::unique_ptr<ProgressBar> bar;
  if (show_progress) {
    bar = std::make_unique<ProgressBar>(STDERR_FILENO, id);
  }
  for (;;) {
    std::optional<std::string> line;
    try {
      line = client->read_line();
    } catch (const CliError& e) {
      throw Unreachable(e.what());
    }
    if (!line) {
      break;
    }
    const auto reply = parse_reply(*line);
    if (const auto progress = control::read_progress(reply)) {
      if (bar) {
        bar->update(Progress{progress->done, progress->total, progress->failed, progress->read_all,
                             expected_jobs});
      }
      continue;
    }
    if (bar) {
      bar->clear();
    }
    try {
      check_ok(reply);
    } catch (const CliError& e) {
      if (e.code() == kExitRefused) {
        throw Unreachable(e.what());  // stopping, or too busy now: asked again
      }
      throw CliError(kExitUnknown, fmt::format("batch '{}' was accepted, but {}", id, e.what()));
    }
    const Json* summary = member(reply, "summary");
    if (summary == nullptr || !summary->is_object()) {
      throw CliError(kExitUnknown, "baristad's answer to wait has no summary: " + *line);
    }
    write_all(STDOUT_FILENO, summary_text(*line, *summary) + "\n");
    return exit_code_of(*summary);
  }
  if (bar) {
    bar->clear();
  }
  throw Unreachable("baristad closed the connection");
}

}  // namespace

int wait_for_batch(const std::filesystem::path& socket, const std::string& pool,
                   const std::string& id, bool show_progress,
                   std::optional<std::uint64_t> expected_jobs) {
  if (show_progress) {
    tidy_up_on_interrupt(id);
  }
  // The batch is durable in the spool (or Redis) and survives a restart of the daemon: while
  // the daemon is away the wait goes on, asking again with jittered backoff, so that a batch
  // that was accepted never ends in "refused".
  const auto window = reconnect_window();
  std::optional<std::chrono::steady_clock::time_point> away_since;
  JitteredBackoff backoff(std::chrono::milliseconds(100), std::chrono::milliseconds(2000));
  for (;;) {
    try {
      return wait_once(socket, pool, id, show_progress, expected_jobs);
    } catch (const Unreachable& e) {
      const auto now = std::chrono::steady_clock::now();
      if (!away_since) {
        away_since = now;
        write_all(STDERR_FILENO,
                  fmt::format("barista: waiting for batch '{}': {}; trying again\n", id, e.what()));
      }
      if (now - *away_since >= window) {
        throw CliError(kExitUnknown,
                       fmt::format("batch '{}' was accepted, but its outcome could not be learned: "
                                   "{} (it keeps its results: see `barista results {}/{}`)",
                                   id, e.what(), pool, id));
      }
      backoff.sleep();
    }
  }
}

}  // namespace barista::cli
