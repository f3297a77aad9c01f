#pragma once

// The exit codes of `barista` (docs/reference.md#exit-codes). An error reply of baristad carries
// the one its client exits with ({"ok":false,"code":C,...}), so both programs compile this one
// definition.

namespace barista::control {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;     ///< some failure, unknown batch, rejected reload
inline constexpr int kExitCancelled = 2;  ///< `submit --wait`: the batch was cancelled
inline constexpr int kExitRefused = 3;    ///< refused, no daemon, unreadable input
/// A verb that waits: the daemon accepted the request (a submitted batch: its id was printed),
/// but its outcome could not be learned (the daemon stayed unreachable).
inline constexpr int kExitUnknown = 4;
/// Usage errors exit with EX_USAGE (sysexits.h), apart from the codes the verbs use.
inline constexpr int kExitUsage = 64;

}  // namespace barista::control
