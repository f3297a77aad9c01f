#pragma once

#include "tests/unit/temp_dir.hpp"

#include <barista/sdk.hpp>

// Helpers shared by the plugin loader tests: temporary folders, copies of fixture plugins, and
// one call of a loaded processor.

#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace barista::plugin::testing {

using barista::testing::TempDir;

/// A built fixture plugin, e.g. fixture("fx_crash") -> BARISTA_FIXTURE_DIR/fx_crash.so.
inline std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(BARISTA_FIXTURE_DIR) / (name + ".so");
}

/// Copies `from` to `to` with mode 0755, whatever the umask, so that only the mode a test sets
/// afterwards decides whether the loader trusts the file.
inline void install_copy(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::create_directories(to.parent_path());
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
  ::chmod(to.c_str(), 0755);
}

/// Copies `from` over `to` the way an operator should replace a plugin in use: write a new file
/// beside it, then rename it over the old one (so the old inode, possibly mapped, is untouched).
inline void replace_by_rename(const std::filesystem::path& from, const std::filesystem::path& to) {
  auto tmp = to;
  tmp += ".new";
  install_copy(from, tmp);
  std::filesystem::rename(tmp, to);
}

/// Runs `processor` once on `payload` (job "1", attempt 1, no deadline) and returns the text of
/// its outcome. PROCESSOR is anything that points at a barista::Processor.
template <typename ProcessorPtr>
std::string run(const ProcessorPtr& processor, std::string_view payload = "x") {
  std::atomic<bool> cancel{false};
  Context ctx(&cancel, Context::Clock::time_point::max());
  return processor->process(ctx, Job{"1", payload, 1}).text();
}

}  // namespace barista::plugin::testing
