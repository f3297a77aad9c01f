#pragma once

// Typed reading of YAML values with error collection. Internal to daemon/config/.
//
// Every reader reports its own problem (`LABEL: expected ..., got ...`) and returns nullopt, so
// that the caller goes on and the user sees every problem of the file at once.

#include "daemon/config/config.hpp"
#include "daemon/config/config_loader.hpp"
#include "daemon/config/yaml_tree.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace barista::config::detail {

class Validator {
 public:
  /// `file` names the file in every message, as the user gave it.
  explicit Validator(std::string file) : file_(std::move(file)) {}

  /// Records a problem. Past kMaxIssues problems are only counted: a file of garbage would
  /// otherwise print one line per line.
  void error(int line, int column, std::string message);
  void error(const YamlNode& at, std::string message) {
    error(at.line, at.column, std::move(message));
  }
  [[nodiscard]] const std::string& file() const noexcept { return file_; }
  [[nodiscard]] bool has_errors() const noexcept { return !issues_.empty(); }
  /// The problems found, ordered by their place in the file (then a count of those not kept).
  [[nodiscard]] std::vector<ConfigIssue> take_issues();
  [[nodiscard]] Location location_of(const YamlNode& node) const {
    return {file_, node.line, node.column};
  }

  /// Calls `visit` for each entry (key and value) of `map` in file order. Reports (prefixed with
  /// `where`) keys that are not text, duplicates, and keys not in `known` (with a suggestion or the
  /// list of valid keys); those are not visited. An empty `known` accepts any key.
  void for_each_entry(const YamlNode& map, std::string_view where,
                      std::span<const std::string_view> known,
                      const std::function<void(const YamlNode& key, const YamlNode& value)>& visit);

  /// A map, or null (taken as an empty map). Reports anything else.
  bool expect_map(const YamlNode& node, std::string_view label);

  // Readers. `label` starts each message (`pool 'x': workers`).
  std::optional<std::string> string(const YamlNode& node, std::string_view label);
  std::optional<std::int64_t> integer(const YamlNode& node, std::string_view label,
                                      std::int64_t min, std::int64_t max);
  std::optional<std::chrono::milliseconds> duration(const YamlNode& node, std::string_view label,
                                                    std::chrono::milliseconds min);
  std::optional<std::uint64_t> size(const YamlNode& node, std::string_view label,
                                    std::uint64_t min);
  std::optional<Rate> rate(const YamlNode& node, std::string_view label);
  /// A list of strings; a single string is taken as a list of one.
  std::optional<std::vector<std::string>> string_list(const YamlNode& node, std::string_view label);
  /// A string that names one of `allowed`.
  std::optional<std::string> choice(const YamlNode& node, std::string_view label,
                                    std::span<const std::string_view> allowed);
  /// `host:port` (`[v6]:port` too), port 0-65535.
  std::optional<std::string> host_port(const YamlNode& node, std::string_view label);

 private:
  std::optional<std::string> scalar(const YamlNode& node, std::string_view label,
                                    std::string_view expected);

  static constexpr std::size_t kMaxIssues = 100;

  std::string file_;
  std::vector<ConfigIssue> issues_;
  std::size_t dropped_ = 0;
};

/// The closest of `known` to `key` when close enough to be a likely typo, else empty.
std::string_view closest_key(std::string_view key, std::span<const std::string_view> known);

/// Parses `HOST:PORT` (HOST may be `[v6]`); nullopt when malformed.
std::optional<std::pair<std::string, int>> split_host_port(std::string_view text);

}  // namespace barista::config::detail
