// barista submit POOL FILE|- [--name NAME] [--wait]
#include "daemon/cli/cli_error.hpp"
#include "daemon/cli/client.hpp"
#include "daemon/cli/progress.hpp"
#include "daemon/cli/verbs.hpp"
#include "daemon/cli/wait.hpp"

#include "daemon/common/error_text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>

#include <fmt/format.h>

namespace barista::cli {
namespace {

/// The batch file name used for `-` when --name is not given.
constexpr const char* kStdinName = "stdin.txt";

struct SubmitOptions {
  std::string pool;
  std::string file;
  std::string name;
  int weight = 1;
  bool wait = false;
};

// The batch's input, opened before the daemon is contacted: an unreadable file is refused
// without leaving anything behind.
class Input {
 public:
  explicit Input(const std::string& file) {
    if (file == "-") {
      fd_ = STDIN_FILENO;
      label_ = "standard input";
      return;
    }
    label_ = file;
    fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      throw CliError(kExitRefused,
                     fmt::format("cannot read {}: {}", file, common::error_text(errno)));
    }
    owned_ = true;
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd_);  // the destructor does not run for a constructor that throws
      throw CliError(kExitRefused, fmt::format("cannot read {}: is a folder", file));
    }
  }
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  ~Input() {
    if (owned_) {
      ::close(fd_);
    }
  }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] const std::string& label() const noexcept { return label_; }
  /// Back to its start, for a submission sent again; false when it cannot (a pipe).
  [[nodiscard]] bool rewind() const noexcept { return ::lseek(fd_, 0, SEEK_SET) == 0; }

 private:
  int fd_ = -1;
  bool owned_ = false;
  std::string label_;
};

std::string batch_name(const SubmitOptions& o) {
  if (!o.name.empty()) {
    return o.name;
  }
  if (o.file == "-") {
    return kStdinName;
  }
  auto base = std::filesystem::path(o.file).filename().string();
  if (base.empty() || base == "." || base == "..") {
    throw CliError(kExitRefused, fmt::format("{} has no file name to use for the batch: give one "
                                             "with --name",
                                             o.file));
  }
  return base;
}

// A refusal because the daemon is too busy now (every request thread taken, or its listen queue
// full): nothing was stored, and trying again later may well work.
bool busy(const CliError& e) {
  return e.code() == kExitRefused && std::string_view(e.what()).find("busy") != std::string::npos;
}

// Sends the batch and reads the answer. A daemon too busy to take it is asked again with
// jittered backoff (0.05 s doubling to 1 s, half of each random) for up to 30 s, as long as the
// input can be read again from its start (a file; not a pipe).
Json submit_once(const std::filesystem::path& socket, const SubmitOptions& o,
                 const std::string& name, const Input& input, JobCounter* counter,
                 std::string& line) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  JitteredBackoff backoff(std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  for (;;) {
    try {
      // Counted on the way for the progress bar (afresh if it is sent again): the daemon only
      // knows the total once it has read the whole batch, which it does as the jobs run.
      std::function<void(std::string_view)> count;
      if (counter != nullptr) {
        *counter = JobCounter();
        count = [counter](std::string_view bytes) { counter->feed(bytes); };
      }
      ControlClient client(socket);
      const auto weight = std::to_string(o.weight);
      client.send_request(
          o.weight == 1
              ? request_json("submit", {{"pool", o.pool}, {"name", name}})
              : request_json("submit", {{"pool", o.pool}, {"name", name}, {"weight", weight}}));
      client.send_body(input.fd(), input.label(), count);
      return expect_ok(client, line, "submit");
    } catch (const CliError& e) {
      if (!busy(e) || std::chrono::steady_clock::now() >= give_up || !input.rewind()) {
        throw;
      }
    }
    backoff.sleep();
  }
}

int run_submit(const GlobalOptions& globals, const SubmitOptions& o) {
  if (o.weight < 1 || o.weight > 1000) {
    throw CliError(kExitFailed, fmt::format("--weight must be 1 to 1000, not {}", o.weight));
  }
  const auto name = batch_name(o);
  Input input(o.file);
  const auto socket = socket_of(globals);
  const bool show_progress = o.wait && ::isatty(STDERR_FILENO) == 1;
  JobCounter counter;
  std::string id;
  {
    std::string line;
    const auto reply =
        submit_once(socket, o, name, input, show_progress ? &counter : nullptr, line);
    const auto stored = control::read_submit(reply);
    if (!stored) {
      throw CliError(kExitRefused, "baristad's answer to submit names no batch: " + line);
    }
    id = stored->batch;
    // What the daemon noticed but stored anyway (a Redis pool: job ids used twice, dropped).
    for (const auto& w : stored->warnings) {
      write_all(STDERR_FILENO, fmt::format("barista: warning: {}\n", w));
    }
  }
  write_all(STDOUT_FILENO, id + "\n");
  if (!o.wait) {
    return kExitOk;
  }
  return wait_for_batch(socket, o.pool, id, show_progress, counter.jobs());
}

}  // namespace

void add_submit(CLI::App& app, const GlobalOptions& globals, Action& action) {
  auto o = std::make_shared<SubmitOptions>();
  auto* cmd = add_verb(
      app, "submit", "Hand a batch file to baristad; prints the batch id",
      "baristad stores the batch durably in the spool before answering; the batch id is the "
      "first line printed. With --wait, the batch's summary.json follows when it ends.\n"
      "Exit: 0 accepted (--wait: every job ok); 1 some job failed (--wait); 2 the batch was "
      "cancelled (--wait), or a --weight out of 1-1000; 3 refused (unknown pool, no daemon, "
      "unreadable file); 4 accepted, but "
      "the daemon stayed away for $BARISTA_RECONNECT_FOR seconds (default 60) during --wait.");
  cmd->add_option("POOL", o->pool, "the pool that runs the batch")->required();
  cmd->add_option("FILE", o->file, "the batch file, or - to read it from standard input")
      ->required();
  cmd->add_option("--name", o->name,
                  "the batch file name, which gives the batch id (its name without the last "
                  "extension) and the format (.jsonl or text). Default: FILE's name; "
                  "`stdin.txt` for -")
      ->type_name("NAME");
  cmd->add_option("--weight", o->weight,
                  "its share of the pool's workers against the pool's other batches, 1-1000 "
                  "(default 1, as a file dropped in the inbox)")
      ->type_name("N");
  cmd->add_flag("--wait", o->wait,
                "then wait for the batch to end: live progress on stderr when it is a terminal, "
                "the summary JSON on stdout");
  cmd->callback(
      [&action, &globals, o] { action = [&globals, o] { return run_submit(globals, *o); }; });
}

}  // namespace barista::cli
