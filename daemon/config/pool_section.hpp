#pragma once

// Reading one entry of `pools:`. Internal to daemon/config/.

#include "daemon/config/config.hpp"
#include "daemon/config/validator.hpp"
#include "daemon/config/yaml_tree.hpp"

#include <filesystem>
#include <string_view>

namespace barista::config::detail {

/// True for a valid pool name: [a-z0-9_-]{1,64}.
bool valid_pool_name(std::string_view name);

/// `text` as an absolute path: a relative one is taken from `base` (the config file's folder).
std::filesystem::path resolve_path(const std::filesystem::path& base, std::string_view text);

/// Reads the pool named by `name` (a scalar key of `pools:`) from `body`. Problems are reported
/// to `v`; the returned pool is only meaningful when there were none.
PoolConfig read_pool(Validator& v, const YamlNode& name, const YamlNode& body,
                     const std::filesystem::path& base);

}  // namespace barista::config::detail
