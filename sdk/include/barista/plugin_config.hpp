#pragma once

/// @file plugin_config.hpp
/// The pool's `config:` map as the plugin sees it, with typed accessors.

#include <barista/units.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace barista {

/// A configuration value of the wrong type or form. The daemon reports it with the key's
/// location in the config file (`barista.yaml:14:16: pool 'scrape': config.delay: ...`).
class ConfigError : public std::runtime_error {
 public:
  /// `line` and `column` are 1-based; 0 when unknown.
  ConfigError(std::string key, const std::string& message, int line = 0, int column = 0)
      : std::runtime_error(message), key_(std::move(key)), line_(line), column_(column) {}

  /// The key the error is about (may be empty).
  [[nodiscard]] const std::string& key() const noexcept { return key_; }
  /// 1-based line of the offending value in the config file; 0 when unknown.
  [[nodiscard]] int line() const noexcept { return line_; }
  /// 1-based column of the offending value; 0 when unknown.
  [[nodiscard]] int column() const noexcept { return column_; }

 private:
  std::string key_;
  int line_;
  int column_;
};

struct ConfigEntry;

/// One value of the `config:` tree: a scalar (kept as its text), a list or a map.
struct ConfigValue {
  enum class Kind { kNull, kScalar, kList, kMap };

  Kind kind = Kind::kNull;
  std::string scalar;              ///< the text of a scalar
  std::vector<ConfigValue> items;  ///< the elements of a list
  std::vector<ConfigEntry> map;    ///< the entries of a map, in file order
  int line = 0;                    ///< 1-based; 0 when unknown
  int column = 0;                  ///< 1-based; 0 when unknown
};

/// One key of a map value. (A struct, not std::pair: a pair of an incomplete type does not
/// compile with every standard library.)
struct ConfigEntry {
  std::string first;   ///< the key
  ConfigValue second;  ///< its value
};

/// The pool's `config:` map. Accessors return the fallback when the key is absent and throw
/// ConfigError when it is present with the wrong type or form.
class PluginConfig {
 public:
  PluginConfig() = default;
  /// `root` is the map under `config:` (a null value means an empty map).
  explicit PluginConfig(ConfigValue root) : root_(std::move(root)) {}

  /// True when `key` is present.
  [[nodiscard]] bool has(std::string_view key) const { return find(key) != nullptr; }

  /// The value at `key`, or nullptr.
  [[nodiscard]] const ConfigValue* find(std::string_view key) const {
    for (const auto& [k, v] : root_.map) {
      if (k == key) {
        return &v;
      }
    }
    return nullptr;
  }

  /// The keys present, in file order.
  [[nodiscard]] std::vector<std::string> keys() const {
    std::vector<std::string> out;
    out.reserve(root_.map.size());
    for (const auto& entry : root_.map) {
      out.push_back(entry.first);
    }
    return out;
  }

  /// A string value.
  [[nodiscard]] std::string get_string(std::string_view key, std::string fallback) const {
    const auto* v = find(key);
    if (v == nullptr) {
      return fallback;  // moved: a conditional with the other branch's const& would copy it
    }
    return scalar_of(key, *v, "a string");
  }

  /// An integer value (decimal, optionally signed).
  [[nodiscard]] std::int64_t get_int(std::string_view key, std::int64_t fallback) const {
    const auto* v = find(key);
    if (v == nullptr) {
      return fallback;
    }
    const std::string& s = scalar_of(key, *v, "an integer");
    std::int64_t out = 0;
    const char* first = s.data();
    if (!s.empty() && s.front() == '+') {
      ++first;
    }
    auto [ptr, ec] = std::from_chars(first, s.data() + s.size(), out);
    if (ec != std::errc() || ptr != s.data() + s.size() || first == s.data() + s.size()) {
      throw error(key, *v, "expected an integer, got '" + s + "'");
    }
    return out;
  }

  /// A boolean value: true/false (also yes/no, on/off).
  [[nodiscard]] bool get_bool(std::string_view key, bool fallback) const {
    const auto* v = find(key);
    if (v == nullptr) {
      return fallback;
    }
    const std::string& s = scalar_of(key, *v, "a boolean");
    if (s == "true" || s == "yes" || s == "on" || s == "True" || s == "TRUE") {
      return true;
    }
    if (s == "false" || s == "no" || s == "off" || s == "False" || s == "FALSE") {
      return false;
    }
    throw error(key, *v, "expected true or false, got '" + s + "'");
  }

  /// A duration such as `250ms`, `30s`, `5m`, `1h`.
  [[nodiscard]] std::chrono::milliseconds get_duration(std::string_view key,
                                                       std::chrono::milliseconds fallback) const {
    const auto* v = find(key);
    if (v == nullptr) {
      return fallback;
    }
    const std::string& s = scalar_of(key, *v, "a duration");
    auto d = units::parse_duration(s);
    if (!d) {
      throw error(key, *v, "expected a duration such as 250ms, 30s, 5m or 1h, got '" + s + "'");
    }
    return *d;
  }

  /// A size in bytes such as `512`, `64KiB`, `1MiB`.
  [[nodiscard]] std::uint64_t get_size(std::string_view key, std::uint64_t fallback) const {
    const auto* v = find(key);
    if (v == nullptr) {
      return fallback;
    }
    const std::string& s = scalar_of(key, *v, "a size");
    auto n = units::parse_size(s);
    if (!n) {
      throw error(key, *v, "expected a size such as 512, 64KiB or 1MiB, got '" + s + "'");
    }
    return *n;
  }

  /// A list of strings (a single scalar is taken as a list of one).
  [[nodiscard]] std::vector<std::string> get_string_list(std::string_view key,
                                                         std::vector<std::string> fallback) const {
    const auto* v = find(key);
    if (v == nullptr) {
      return fallback;
    }
    if (v->kind == ConfigValue::Kind::kScalar) {
      return {v->scalar};
    }
    if (v->kind != ConfigValue::Kind::kList) {
      throw error(key, *v, "expected a list of strings");
    }
    std::vector<std::string> out;
    out.reserve(v->items.size());
    for (const auto& item : v->items) {
      if (item.kind != ConfigValue::Kind::kScalar) {
        throw error(key, item, "expected a list of strings");
      }
      out.push_back(item.scalar);
    }
    return out;
  }

  /// Throws ConfigError for the first key not in `known`, suggesting the closest known key.
  /// Call it in the factory so that a misspelt key is reported by `baristad --check-config`.
  void expect_only(std::initializer_list<std::string_view> known) const {
    for (const auto& [k, v] : root_.map) {
      if (std::find(known.begin(), known.end(), k) != known.end()) {
        continue;
      }
      std::string msg = "unknown key '" + k + "'";
      std::string_view best;
      std::size_t best_distance = 3;  // suggest only close matches
      for (auto candidate : known) {
        auto d = edit_distance(k, candidate);
        if (d < best_distance) {
          best_distance = d;
          best = candidate;
        }
      }
      if (!best.empty()) {
        msg += " (did you mean '" + std::string(best) + "'?)";
      } else {
        msg += " (known keys:";
        for (auto candidate : known) {
          msg += " " + std::string(candidate);
        }
        msg += ")";
      }
      throw ConfigError(k, msg, v.line, v.column);
    }
  }

  /// The whole tree.
  [[nodiscard]] const ConfigValue& root() const noexcept { return root_; }

  /// Levenshtein distance, used for "did you mean" suggestions.
  static std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
      row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
      std::size_t diag = row[0];
      row[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j) {
        std::size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0U : 1U)});
        diag = up;
      }
    }
    return row[b.size()];
  }

 private:
  static ConfigError error(std::string_view key, const ConfigValue& v, const std::string& msg) {
    return ConfigError(std::string(key), msg, v.line, v.column);
  }
  static const std::string& scalar_of(std::string_view key, const ConfigValue& v,
                                      const char* what) {
    if (v.kind != ConfigValue::Kind::kScalar) {
      throw error(key, v, std::string("expected ") + what);
    }
    return v.scalar;
  }

  ConfigValue root_;
};

}  // namespace barista
