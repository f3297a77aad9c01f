// shell: runs a command per job; the output is what it writes to stdout.
//
// config:
//   command: [argv...]   required; `{}` anywhere in an argument is replaced by the payload
//   stdin: false         true: the payload is written to the command's stdin (else /dev/null)
//   max_output: 1MiB     stdout beyond this fails the job (fatal)
//
// No shell is involved unless the command names one (`[sh, -c, '...']`), so a payload is never
// parsed by a shell unless you ask for it.

#include <barista/sdk.hpp>

#include "child_process.hpp"

#include <cstring>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

using barista::ConfigError;
using barista::Outcome;

constexpr std::uint64_t kDefaultMaxOutput = 1ULL << 20;
// The output is held in memory and copied into results.jsonl: refuse absurd limits early.
constexpr std::uint64_t kLargestMaxOutput = 1ULL << 30;

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string signal_name(int sig) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = ::sigabbrev_np(sig); abbrev != nullptr) {
    return " (SIG" + std::string(abbrev) + ")";
  }
#endif
  return {};
}

// The stderr tail as it goes into an error: trailing blank lines trimmed, and not starting in
// the middle of a UTF-8 character when it was cut.
std::string_view tidy_tail(std::string_view tail) {
  while (!tail.empty() && (static_cast<unsigned char>(tail.front()) & 0xC0U) == 0x80U) {
    tail.remove_prefix(1);
  }
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' ')) {
    tail.remove_suffix(1);
  }
  return tail;
}

std::string with_tail(std::string message, std::string_view stderr_tail) {
  const auto tail = tidy_tail(stderr_tail);
  if (!tail.empty()) {
    message += ": ";
    message += tail;
  }
  return message;
}

class Shell final : public barista::Processor {
 public:
  explicit Shell(const barista::PluginConfig& cfg)
      : stdin_(cfg.get_bool("stdin", false)),
        max_output_(cfg.get_size("max_output", kDefaultMaxOutput)) {
    read_command(cfg);
    if (max_output_ > kLargestMaxOutput) {
      const auto* v = cfg.find("max_output");
      throw ConfigError("max_output", "must be at most 1GiB", v->line, v->column);
    }
  }

  Outcome process(barista::Context& ctx, const barista::Job& job) override {
    if (ctx.cancelled()) {
      return Outcome::fail("cancelled");
    }
    if (ctx.expired()) {
      return Outcome::fail("deadline exceeded");
    }
    if (uses_payload_in_argv_ && job.payload.find('\0') != std::string_view::npos) {
      return Outcome::fatal("payload contains a NUL byte, which cannot be passed in an argument");
    }
    for (std::size_t i = 0; i < command_.size(); ++i) {
      substitute(command_[i], job.payload, argv_[i]);
    }
    auto input = stdin_ ? std::optional<std::string_view>(job.payload) : std::nullopt;
    auto result = barista_shell::run_child(argv_, input, max_output_, ctx);
    return to_outcome(std::move(result));
  }

 private:
  void read_command(const barista::PluginConfig& cfg) {
    const auto* v = cfg.find("command");
    if (v == nullptr) {
      throw ConfigError("command",
                        "is required: the argv list to run, e.g. [wc, -c] or [sh, -c, 'wc -c']");
    }
    command_ = cfg.get_string_list("command", {});
    if (command_.empty() || command_.front().empty()) {
      throw ConfigError("command", "must name a program", v->line, v->column);
    }
    // `command: wc -c` would look for a program called "wc -c".
    if (v->kind == barista::ConfigValue::Kind::kScalar &&
        v->scalar.find_first_of(" \t") != std::string::npos) {
      throw ConfigError("command",
                        "is an argv list, not a command line: write [wc, -c], or "
                        "[sh, -c, '" +
                            v->scalar + "'] to have a shell parse it",
                        v->line, v->column);
    }
    for (const auto& arg : command_) {
      uses_payload_in_argv_ = uses_payload_in_argv_ || arg.find("{}") != std::string::npos;
    }
    argv_.resize(command_.size());
  }

  static void substitute(const std::string& pattern, std::string_view payload, std::string& out) {
    out.clear();
    std::size_t pos = 0;
    for (;;) {
      const auto at = pattern.find("{}", pos);
      if (at == std::string::npos) {
        out.append(pattern, pos);
        return;
      }
      out.append(pattern, pos, at - pos);
      out.append(payload);
      pos = at + 2;
    }
  }

  [[nodiscard]] Outcome to_outcome(barista_shell::RunResult r) const {
    using barista_shell::RunEnd;
    switch (r.end) {
      case RunEnd::kExited:
        if (r.code == 0) {
          return Outcome::ok(std::move(r.out));
        }
        return Outcome::fail(with_tail("exit status " + std::to_string(r.code), r.err_tail));
      case RunEnd::kSignalled:
        return Outcome::fail(with_tail(
            "killed by signal " + std::to_string(r.code) + signal_name(r.code), r.err_tail));
      case RunEnd::kDeadline:
        return Outcome::fail("deadline exceeded");
      case RunEnd::kCancelled:
        return Outcome::fail("cancelled");
      case RunEnd::kOutputTooLarge:
        return Outcome::fatal("output exceeds max_output (" + std::to_string(max_output_) +
                              " bytes)");
      case RunEnd::kSpawnFailed:
        return spawn_failure(r.code);
      case RunEnd::kSystemError:
        break;
    }
    return Outcome::fail("cannot run the command: " + errno_text(r.code));
  }

  [[nodiscard]] Outcome spawn_failure(int err) const {
    std::string message = "cannot run '" + argv_.front() + "': ";
    switch (err) {
      case ENOENT:
        return Outcome::fatal(message + "command not found");
      case EACCES:
      case ENOEXEC:
      case ENOTDIR:
      case ELOOP:
      case ENAMETOOLONG:
        return Outcome::fatal(message + errno_text(err));
      default:  // out of processes, memory or fds: may well work on a retry
        return Outcome::fail(message + errno_text(err));
    }
  }

  std::vector<std::string> command_;
  bool uses_payload_in_argv_ = false;
  bool stdin_;
  std::uint64_t max_output_;
  std::vector<std::string> argv_;  // reused from job to job
};

}  // namespace

BARISTA_PLUGIN("shell", "1.0.0", [](const barista::PluginConfig& cfg) {
  cfg.expect_only({"command", "stdin", "max_output"});
  return std::make_unique<Shell>(cfg);
})
