#pragma once

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

namespace barista::runtime {

/// Fully validates a config file, as `baristad --check-config` and `barista check-config` do:
/// parses and validates it, then for every pool loads its plugin and creates one processor with
/// the pool's `config:`. Returns every problem as `FILE:LINE:COL: message` (empty: valid).
/// Plugin problems are located at the pool's `plugin:` value; a plugin's ConfigError at the
/// offending value (at the pool's name when the plugin gives no place, e.g. for a missing key).
[[nodiscard]] std::vector<std::string> check_config_file(const std::filesystem::path& file);

/// Runs check_config_file and reports the outcome: `FILE: ok` on `out` and 0 when valid, else
/// each problem on its own line on `err` and 1.
int run_check_config(const std::filesystem::path& file, std::ostream& out, std::ostream& err);

}  // namespace barista::runtime
