#include "daemon/config/config_loader.hpp"

#include "daemon/common/error_text.hpp"
#include "daemon/common/fs.hpp"
#include "daemon/common/json.hpp"

#include "daemon/config/pool_section.hpp"
#include "daemon/config/validator.hpp"
#include "daemon/config/yaml_tree.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

namespace barista::config {
namespace {

using detail::Validator;
using detail::YamlNode;
using Kind = YamlNode::Kind;

// A config file is a few kilobytes; a larger one is a mistake or an attack on the parser.
constexpr std::size_t kMaxConfigBytes = 1UL << 20;

constexpr std::array<std::string_view, 7> kTopKeys = {
    "spool", "control_socket", "plugin_path", "log_level", "metrics", "shutdown_timeout", "pools"};
constexpr std::array<std::string_view, 5> kLogLevels = {"trace", "debug", "info", "warn", "error"};
// sun_path holds 108 bytes including the terminating NUL.
constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;

[[noreturn]] void refuse(const std::filesystem::path& file, std::string message) {
  throw ConfigErrors({ConfigIssue{Location{file.string(), 0, 0}, std::move(message)}});
}

std::optional<std::filesystem::path> read_path(Validator& v, const YamlNode& node,
                                               std::string_view label,
                                               const std::filesystem::path& base) {
  auto text = v.string(node, label);
  if (!text) {
    return std::nullopt;
  }
  return detail::resolve_path(base, *text);
}

void read_pools(Validator& v, const YamlNode& node, const std::filesystem::path& base,
                DaemonConfig& cfg) {
  if (!v.expect_map(node, "pools")) {
    return;
  }
  v.for_each_entry(node, "pools: ", {}, [&](const YamlNode& name, const YamlNode& body) {
    cfg.pools.push_back(detail::read_pool(v, name, body, base));
  });
}

void read_setting(Validator& v, const std::string& key, const YamlNode& value,
                  const std::filesystem::path& base, DaemonConfig& cfg) {
  if (key == "spool") {
    cfg.spool = read_path(v, value, key, base).value_or(cfg.spool);
  } else if (key == "control_socket") {
    auto path = read_path(v, value, key, base);
    if (path && path->native().size() > kMaxSocketPath) {
      v.error(value, fmt::format("control_socket: the path is {} bytes long once resolved ({}), "
                                 "a Unix socket's is at most {}",
                                 path->native().size(), path->string(), kMaxSocketPath));
    } else if (path) {
      cfg.control_socket = *path;
    }
  } else if (key == "plugin_path") {
    if (auto dirs = v.string_list(value, key)) {
      cfg.plugin_path.clear();
      for (const auto& dir : *dirs) {
        cfg.plugin_path.push_back(detail::resolve_path(base, dir));
      }
    }
  } else if (key == "log_level") {
    cfg.log_level = v.choice(value, key, kLogLevels).value_or(cfg.log_level);
  } else if (key == "metrics") {
    // Empty means off, as when absent.
    if (value.kind != Kind::kNull) {
      cfg.metrics = v.host_port(value, key);
    }
  } else if (key == "shutdown_timeout") {
    cfg.shutdown_timeout =
        v.duration(value, key, std::chrono::milliseconds(0)).value_or(cfg.shutdown_timeout);
  } else if (key == "pools") {
    read_pools(v, value, base, cfg);
  }
}

// Any sequence of newline-free messages, one per line.
std::string join_issues(const std::vector<ConfigIssue>& issues) {
  std::string out;
  for (const auto& issue : issues) {
    out += (out.empty() ? "" : "\n") + issue.to_string();
  }
  return out;
}

}  // namespace

std::string ConfigIssue::to_string() const {
  if (where.line <= 0) {
    return fmt::format("{}: {}", where.file, message);
  }
  return fmt::format("{}:{}:{}: {}", where.file, where.line, where.column, message);
}

ConfigErrors::ConfigErrors(std::vector<ConfigIssue> issues)
    : std::runtime_error(join_issues(issues)), issues_(std::move(issues)) {}

DaemonConfig parse_config(std::string_view text, const std::filesystem::path& file) {
  if (text.size() > kMaxConfigBytes) {
    refuse(file, fmt::format("file of {} bytes exceeds the 1 MiB limit", text.size()));
  }
  DaemonConfig cfg;
  std::error_code ec;
  auto absolute = std::filesystem::absolute(file, ec);
  cfg.file = (ec ? file : absolute).lexically_normal();
  cfg.plugin_path = {BARISTA_DEFAULT_PLUGIN_DIR};
  const auto base = cfg.file.parent_path();

  // YAML is UTF-8 text: other bytes would reach pool names, paths and plugins unchecked.
  if (const auto valid = common::valid_utf8_prefix(text); valid < text.size()) {
    const auto before = text.substr(0, valid);
    const auto newline = before.rfind('\n');
    const auto begin = newline == std::string_view::npos ? 0 : newline + 1;
    const auto line = 1 + std::count(before.begin(), before.end(), '\n');
    throw ConfigErrors({ConfigIssue{
        Location{file.string(), static_cast<int>(line), static_cast<int>(valid - begin + 1)},
        fmt::format("not UTF-8 text (byte 0x{:02x})", static_cast<unsigned char>(text[valid]))}});
  }
  Validator v(file.string());
  auto parsed = detail::parse_yaml(text);
  for (auto& problem : parsed.problems) {
    v.error(problem.line, problem.column, std::move(problem.message));
  }
  // An empty document is a daemon with every default and no pools.
  if (parsed.root && parsed.root->kind != Kind::kNull) {
    const auto& root = *parsed.root;
    if (root.kind != Kind::kMap) {
      v.error(root, fmt::format("expected a map of settings (spool, pools, ...) at the top level, "
                                "got {}",
                                detail::describe(root)));
    } else {
      v.for_each_entry(root, "", kTopKeys, [&](const YamlNode& key, const YamlNode& value) {
        read_setting(v, key.text, value, base, cfg);
      });
    }
  }
  if (v.has_errors()) {
    throw ConfigErrors(v.take_issues());
  }
  return cfg;
}

DaemonConfig load_config_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    refuse(file, fmt::format("cannot read: {}", common::error_text(errno)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<std::uint64_t>(st.st_size) > kMaxConfigBytes) {
    refuse(file, fmt::format("file of {} bytes exceeds the 1 MiB limit", st.st_size));
  }
  // Read one byte past the limit, so that a file that is not regular (or grew) is caught too.
  std::string text;
  try {
    text = common::read_up_to(fd, kMaxConfigBytes + 1, file.string());
  } catch (const std::system_error& e) {
    refuse(file, fmt::format("cannot read: {}", e.code().message()));
  }
  if (text.size() > kMaxConfigBytes) {
    refuse(file,
           fmt::format("file of more than {} bytes exceeds the 1 MiB limit", kMaxConfigBytes));
  }
  return parse_config(text, file);
}

}  // namespace barista::config
