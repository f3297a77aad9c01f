#include "daemon/plugin/plugin_registry.hpp"

#include <fmt/format.h>

namespace barista::plugin {

PluginRegistry::PluginRegistry(std::vector<std::filesystem::path> plugin_path,
                               std::filesystem::path cache_dir)
    : cache_dir_(std::move(cache_dir)), plugin_path_(std::move(plugin_path)) {}

void PluginRegistry::set_plugin_path(std::vector<std::filesystem::path> plugin_path) {
  std::lock_guard lock(mutex_);
  plugin_path_ = std::move(plugin_path);
}

std::filesystem::path PluginRegistry::resolve(std::string_view plugin) const {
  std::filesystem::path as_path(plugin);
  if (as_path.is_absolute()) {
    return as_path;
  }
  if (plugin.find('/') != std::string_view::npos) {
    throw PluginError(fmt::format(
        "plugin '{}': give a plugin name (looked up as NAME.so in plugin_path) or an absolute path",
        plugin));
  }
  std::vector<std::filesystem::path> dirs;
  {
    std::lock_guard lock(mutex_);
    dirs = plugin_path_;
  }
  std::string searched;
  for (const auto& dir : dirs) {
    auto candidate = dir / (std::string(plugin) + ".so");
    std::error_code ec;
    if (std::filesystem::exists(candidate, ec)) {
      return candidate;
    }
    searched += (searched.empty() ? "" : ", ") + dir.string();
  }
  throw PluginError(fmt::format("plugin '{}': {}.so not found in plugin_path ({})", plugin, plugin,
                                searched.empty() ? "empty" : searched));
}

std::shared_ptr<const PluginLibrary> PluginRegistry::load(std::string_view plugin) {
  auto file = resolve(plugin);
  auto library = PluginLibrary::open(file, cache_dir_);
  std::lock_guard lock(mutex_);
  auto& slot = loaded_[file];
  // Keep the earlier object when the contents are the same, so that processors made before and
  // after compare equal by library.
  if (slot && slot->digest() == library->digest()) {
    return slot;
  }
  slot = library;
  return slot;
}

}  // namespace barista::plugin
