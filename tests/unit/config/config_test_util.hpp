#pragma once

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

/// A fresh folder under the system's temp folder, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "barista-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  /// Writes `text` to `name` in the folder and returns its path.
  std::filesystem::path write(const std::string& name, std::string_view text) const {
    auto file = path_ / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary);
    out << text;
    return file;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace barista::config::testing
