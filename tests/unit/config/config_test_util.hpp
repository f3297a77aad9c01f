#pragma once

#include "tests/unit/temp_dir.hpp"

// Helpers shared by the config tests.

#include "daemon/config/config_loader.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace barista::config::testing {

/// The problems parse_config reports for `text` (read as if from `file`), one string each; fails
/// the test when the text is accepted.
inline std::vector<std::string> errors_of(std::string_view text,
                                          const std::filesystem::path& file = "test.yaml") {
  try {
    (void)parse_config(text, file);
  } catch (const ConfigErrors& e) {
    std::vector<std::string> out;
    for (const auto& issue : e.issues()) {
      out.push_back(issue.to_string());
    }
    return out;
  }
  FAIL("the config was accepted:\n" << text);
  return {};
}

/// The single problem reported for `text`.
inline std::string error_of(std::string_view text) {
  auto errors = errors_of(text);
  INFO("text:\n" << text);
  REQUIRE(errors.size() == 1);
  return errors.front();
}

using barista::testing::TempDir;

}  // namespace barista::config::testing
