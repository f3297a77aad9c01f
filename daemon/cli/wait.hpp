#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace barista::cli {

/// Waits for batch `id` of `pool` to end: with `show_progress`, a live progress bar on stderr (a
/// terminal); `expected_jobs`, when known, is how many jobs the batch holds. Prints the summary
/// JSON on stdout. Returns 0 (every job ok), 1 (some failure) or 2 (cancelled); throws CliError
/// when the daemon refuses or goes away.
int wait_for_batch(const std::filesystem::path& socket, const std::string& pool,
                   const std::string& id, bool show_progress,
                   std::optional<std::uint64_t> expected_jobs);

}  // namespace barista::cli
