#pragma once

#include <filesystem>
#include <string>

namespace barista::cli {

/// The options every daemon-facing verb shares (given before or after the verb).
struct GlobalOptions {
  std::string socket;  ///< --socket PATH
  std::string config;  ///< --config FILE
};

/// Where baristad listens when nothing says otherwise.
inline constexpr const char* kDefaultSocket = "/run/barista/barista.sock";

/// The control socket, first found of: --socket, $BARISTA_SOCKET (when not empty), the
/// `control_socket` of --config, the default. `env_socket` is $BARISTA_SOCKET (nullptr: unset).
/// Throws CliError (exit 3) when --config cannot be read.
std::filesystem::path resolve_socket(const GlobalOptions& options, const char* env_socket);

}  // namespace barista::cli
