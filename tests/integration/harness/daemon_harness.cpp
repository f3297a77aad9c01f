#include "tests/integration/harness/daemon_harness.hpp"

#include "tests/integration/harness/process.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <sstream>
#include <thread>

namespace barista::itest {
namespace fs = std::filesystem;

namespace {

constexpr auto kPoll = milliseconds(10);

std::vector<std::string> pool_names_of(const std::string& pools) {
  static const std::regex kPoolLine(R"(^  ([a-z0-9_-]+):\s*$)");
  std::vector<std::string> names;
  std::istringstream in(pools);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, kPoolLine)) {
      names.push_back(m[1]);
    }
  }
  return names;
}

// What a pool folder holds, for the message of a batch that did not end in time.
std::string listing(const fs::path& dir) {
  std::string out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    out += "  " + fs::relative(it->path(), dir, ec).string();
    if (it->is_regular_file(ec)) {
      out += " (" + std::to_string(it->file_size(ec)) + " bytes)";
    }
    out += '\n';
  }
  return out;
}

}  // namespace

TempDir::TempDir() {
  std::string templ = (fs::temp_directory_path() / "barista-itest-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) {
    throw HarnessError(std::string("mkdtemp: ") + std::strerror(errno));
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path plugin_dir() { return BARISTA_PLUGIN_DIR; }
fs::path fixture_dir() { return BARISTA_FIXTURE_DIR; }

Daemon::Daemon(std::string pools, std::string extra)
    : pools_(std::move(pools)), extra_(std::move(extra)) {
  pool_names_ = pool_names_of(pools_);
  write_config();
}

Daemon::~Daemon() {
  if (pid_ > 0) {
    detail::kill_and_reap(pid_);
    pid_ = -1;
  }
}

void Daemon::set_pools(const std::string& pools, const std::string& extra) {
  pools_ = pools;
  extra_ = extra;
  pool_names_ = pool_names_of(pools);
  write_config();
}

void Daemon::edit_config(const std::function<std::string(std::string)>& edit) {
  write_file(config_file(), edit(config_text()));
}

void Daemon::write_config() { write_file(config_file(), config_text()); }

std::string Daemon::config_text() const {
  std::string text;
  text += "spool: \"" + spool().string() + "\"\n";
  text += "control_socket: \"" + socket().string() + "\"\n";
  text += "plugin_path: [\"" + plugin_dir().string() + "\", \"" + fixture_dir().string() + "\"]\n";
  text += "log_level: info\n";
  text += extra_;
  text += "pools:\n";
  text += pools_;
  return text;
}

void Daemon::spawn() {
  if (pid_ > 0) {
    throw HarnessError("baristad is already running");
  }
  ++runs_;
  log_file_ = root() / ("baristad." + std::to_string(runs_) + ".log");
  fs::create_directories(cwd());
  const int fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw HarnessError("cannot create " + log_file_.string() + ": " + std::strerror(errno));
  }
  try {
    auto argv = launcher_;
    argv.insert(argv.end(), {BARISTAD_BIN, "--config", config_file().string()});
    pid_ =
        detail::spawn(argv, {"BARISTA_FX_WRONG_ABI_MARKER=" + (root() / "wrong_abi_ran").string()},
                      fd, fd, cwd().string());
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

void Daemon::start(milliseconds timeout) {
  spawn();
  const auto until = Clock::now() + timeout;
  for (;;) {
    if (auto code = detail::reap(pid_, milliseconds(0))) {
      pid_ = -1;
      throw HarnessError("baristad exited with " + std::to_string(*code) +
                         " before it was ready; its log:\n" + log());
    }
    bool ready = log().find("baristad ready") != std::string::npos;
    for (const auto& name : pool_names_) {
      ready = ready && fs::is_directory(inbox(name));
    }
    if (ready) {
      return;
    }
    if (Clock::now() >= until) {
      throw HarnessError("baristad was not ready within " + std::to_string(timeout.count()) +
                         " ms; its log:\n" + log());
    }
    std::this_thread::sleep_for(kPoll);
  }
}

void Daemon::signal(int sig) const {
  if (pid_ <= 0 || ::kill(pid_, sig) != 0) {
    throw HarnessError("cannot signal baristad: not running");
  }
}

std::optional<int> Daemon::wait_exit(milliseconds timeout) {
  if (pid_ <= 0) {
    throw HarnessError("baristad is not running");
  }
  auto code = detail::reap(pid_, timeout);
  if (code) {
    pid_ = -1;
  }
  return code;
}

void Daemon::kill9() {
  if (pid_ > 0) {
    detail::kill_and_reap(pid_);
    pid_ = -1;
  }
}

std::string Daemon::log() const { return slurp(log_file_); }

std::string Daemon::log_tail(std::size_t bytes) const {
  auto text = log();
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

bool Daemon::wait_log(std::string_view text, milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  for (;;) {
    if (log().find(text) != std::string::npos) {
      return true;
    }
    if (Clock::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(kPoll);
  }
}

void Daemon::check_alive() {
  if (pid_ <= 0) {
    throw HarnessError("baristad is not running; its log:\n" + log_tail());
  }
  if (auto code = detail::reap(pid_, milliseconds(0))) {
    pid_ = -1;
    throw HarnessError("baristad exited with " + std::to_string(*code) + "; its log:\n" +
                       log_tail());
  }
}

bool Daemon::wait_until(const std::function<bool()>& pred, milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  for (;;) {
    if (pred()) {
      return true;
    }
    check_alive();
    if (Clock::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(kPoll);
  }
}

Clock::time_point Daemon::drop_with(const std::string& pool, const std::string& name,
                                    const std::function<void(std::FILE*)>& write) {
  const auto tmp = inbox(pool) / ("." + name + ".tmp");
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    throw HarnessError("cannot create " + tmp.string() + ": " + std::strerror(errno));
  }
  write(f);
  if (std::fclose(f) != 0) {
    throw HarnessError("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, inbox(pool) / name, ec);
  if (ec) {
    throw HarnessError("cannot rename " + tmp.string() + ": " + ec.message());
  }
  return Clock::now();
}

Clock::time_point Daemon::drop(const std::string& pool, const std::string& name,
                               std::string_view content) {
  return drop_with(pool, name,
                   [&](std::FILE* f) { std::fwrite(content.data(), 1, content.size(), f); });
}

BatchEnd Daemon::wait_batch_summary(const std::string& pool, const std::string& id,
                                    milliseconds timeout) {
  BatchEnd end;
  const bool ended = wait_until(
      [&] {
        for (const char* folder : {"done", "failed"}) {
          const auto dir = pool_dir(pool) / folder / id;
          if (fs::exists(dir / "summary.json")) {
            end.folder = folder;
            end.dir = dir;
            return true;
          }
        }
        return false;
      },
      timeout);
  if (!ended) {
    throw HarnessError("batch '" + id + "' of pool '" + pool + "' did not end within " +
                       std::to_string(timeout.count()) + " ms; the pool's folder:\n" +
                       listing(pool_dir(pool)) + "baristad's log:\n" + log_tail());
  }
  end.seen = Clock::now();
  end.summary = read_summary(end.dir / "summary.json");
  return end;
}

BatchEnd Daemon::wait_batch(const std::string& pool, const std::string& id, milliseconds timeout) {
  auto end = wait_batch_summary(pool, id, timeout);
  end.results = read_results(end.dir / "results.jsonl");
  return end;
}

std::optional<std::uint64_t> Daemon::vm_hwm_kib() const {
  if (pid_ <= 0) {
    return std::nullopt;
  }
  std::istringstream in(slurp(fs::path("/proc") / std::to_string(pid_) / "status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmHWM:")) {
      return std::strtoull(line.c_str() + 6, nullptr, 10);
    }
  }
  return std::nullopt;
}

}  // namespace barista::itest
