#pragma once

#include "daemon/config/config.hpp"

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace barista::config {

/// One problem found in a config file.
struct ConfigIssue {
  Location where;
  std::string message;
  /// `FILE:LINE:COL: message` (or `FILE: message` when the location is unknown).
  [[nodiscard]] std::string to_string() const;
};

/// A config file that cannot be used; carries every problem found, not only the first.
class ConfigErrors : public std::runtime_error {
 public:
  explicit ConfigErrors(std::vector<ConfigIssue> issues);
  [[nodiscard]] const std::vector<ConfigIssue>& issues() const noexcept { return issues_; }

 private:
  std::vector<ConfigIssue> issues_;
};

/// Reads and validates the config file. Relative paths resolve against the file's folder.
/// Throws ConfigErrors.
DaemonConfig load_config_file(const std::filesystem::path& file);

/// Parses and validates config text as if read from `file` (used for locations and for
/// resolving relative paths). Throws ConfigErrors.
DaemonConfig parse_config(std::string_view text, const std::filesystem::path& file);

}  // namespace barista::config
