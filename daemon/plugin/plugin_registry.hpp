#pragma once

#include "daemon/plugin/plugin_library.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace barista::plugin {

/// Finds plugins by name in `plugin_path` and keeps one loaded library per file contents.
class PluginRegistry {
 public:
  /// `cache_dir`: where private, content-addressed copies are loaded from (empty: load in place).
  explicit PluginRegistry(std::vector<std::filesystem::path> plugin_path,
                          std::filesystem::path cache_dir = {});

  /// `NAME` -> the first `DIR/NAME.so` that exists in plugin_path; an absolute path as is.
  /// Throws PluginError naming the folders searched.
  [[nodiscard]] std::filesystem::path resolve(std::string_view plugin) const;

  /// Resolves and loads `plugin`. A file whose contents did not change since the last load is
  /// not loaded again; a changed file is. Throws PluginError.
  [[nodiscard]] std::shared_ptr<const PluginLibrary> load(std::string_view plugin);

  /// Replaces the folders searched (a reload may change plugin_path).
  void set_plugin_path(std::vector<std::filesystem::path> plugin_path);

 private:
  std::filesystem::path cache_dir_;
  mutable std::mutex mutex_;  // guards plugin_path_ and loaded_
  std::vector<std::filesystem::path> plugin_path_;
  std::map<std::filesystem::path, std::shared_ptr<const PluginLibrary>> loaded_;
};

}  // namespace barista::plugin
