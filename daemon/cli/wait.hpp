#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace barista::cli {

/// Waits for batch `id` of `pool` to end: with `show_progress`, a live progress bar on stderr (a
/// terminal); `expected_jobs`, when known, is how many jobs the batch holds. Prints the summary
/// JSON on stdout. Returns 0 (every job ok), 1 (some failure) or 2 (cancelled). While the daemon
/// is unreachable (gone, restarting, stopping, busy) it asks again with jittered backoff, for
/// $BARISTA_RECONNECT_FOR seconds (default 60); then, or when the daemon does not know the
/// batch, throws CliError with kExitUnknown (4): accepted, outcome unknown.
int wait_for_batch(const std::filesystem::path& socket, const std::string& pool,
                   const std::string& id, bool show_progress,
                   std::optional<std::uint64_t> expected_jobs);

}  // namespace barista::cli
