#include "tests/unit/plugins/bundled_plugin_support.hpp"

#include <dirent.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace barista::bundled_plugins_test {

Config& Config::set(std::string key, std::string scalar) {
  ConfigValue v;
  v.kind = ConfigValue::Kind::kScalar;
  v.scalar = std::move(scalar);
  v.line = next_line_++;
  v.column = 3;
  root_.map.push_back({std::move(key), std::move(v)});
  return *this;
}

Config& Config::list(std::string key, const std::vector<std::string>& items) {
  ConfigValue v;
  v.kind = ConfigValue::Kind::kList;
  v.line = next_line_++;
  v.column = 3;
  for (const auto& item : items) {
    ConfigValue element;
    element.kind = ConfigValue::Kind::kScalar;
    element.scalar = item;
    element.line = v.line;
    v.items.push_back(std::move(element));
  }
  root_.map.push_back({std::move(key), std::move(v)});
  return *this;
}

Config& Config::map(std::string key) {
  ConfigValue v;
  v.kind = ConfigValue::Kind::kMap;
  v.line = next_line_++;
  v.column = 3;
  root_.map.push_back({std::move(key), std::move(v)});
  return *this;
}

plugin::ProcessorHandle make_processor(const std::string& name, const PluginConfig& config) {
  auto library =
      plugin::PluginLibrary::open(std::filesystem::path(BARISTA_PLUGIN_DIR) / (name + ".so"));
  return library->create(config);
}

std::string config_error(const std::string& name, const PluginConfig& config) {
  try {
    auto processor = make_processor(name, config);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return {};
}

void Attempt::cancel_after(Clock::duration delay) {
  canceller_ = std::thread([this, delay] {
    std::this_thread::sleep_for(delay);
    cancelled_at_.store(Clock::now().time_since_epoch().count());
    cancel_.store(true);
  });
}

Clock::time_point Attempt::cancelled_at() const noexcept {
  return Clock::time_point(Clock::duration(cancelled_at_.load()));
}

Attempt::~Attempt() {
  if (canceller_.joinable()) {
    canceller_.join();
  }
}

Outcome run(const plugin::ProcessorHandle& processor, std::string_view payload, Attempt& attempt) {
  Job job{"1", payload, 1};
  return processor->process(attempt.ctx(), job);
}

Outcome run(const plugin::ProcessorHandle& processor, std::string_view payload) {
  Attempt attempt;
  return run(processor, payload, attempt);
}

void write_file(const std::filesystem::path& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!out) {
    throw std::runtime_error("cannot write " + path.string());
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out += kDigits[digest[i] >> 4U];
    out += kDigits[digest[i] & 0x0FU];
  }
  return out;
}

namespace {

struct ProcStat {
  pid_t pid = 0;
  char state = '?';
  pid_t ppid = 0;
  pid_t pgrp = 0;
};

// Every process's /proc/PID/stat: "pid (comm) state ppid pgrp ...", comm possibly with spaces.
std::vector<ProcStat> all_processes() {
  std::vector<ProcStat> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const auto stat = read_file(entry.path() / "stat");
    const auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) {
      continue;  // gone meanwhile
    }
    ProcStat p;
    p.pid = std::stoi(name);
    std::istringstream rest(stat.substr(close_paren + 1));
    rest >> p.state >> p.ppid >> p.pgrp;
    out.push_back(p);
  }
  return out;
}

}  // namespace

std::vector<pid_t> live_group_members(pid_t pgid) {
  std::vector<pid_t> out;
  for (const auto& p : all_processes()) {
    if (p.pgrp == pgid && p.state != 'Z' && p.state != 'X') {
      out.push_back(p.pid);
    }
  }
  return out;
}

std::vector<pid_t> zombie_children() {
  std::vector<pid_t> out;
  for (const auto& p : all_processes()) {
    if (p.ppid == ::getpid() && p.state == 'Z') {
      out.push_back(p.pid);
    }
  }
  return out;
}

int open_fd_count() {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

}  // namespace barista::bundled_plugins_test
