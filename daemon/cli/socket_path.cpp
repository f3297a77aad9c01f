#include "daemon/cli/socket_path.hpp"

#include "daemon/cli/cli_error.hpp"
#include "daemon/config/config_loader.hpp"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

namespace barista::cli {
namespace {

namespace fs = std::filesystem;

// The control_socket of a config file that does not validate: an operator who made a mistake
// elsewhere in the file must still reach the daemon (to see `barista reload` reject it).
fs::path socket_from_raw_yaml(const fs::path& file, const config::ConfigErrors& why) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file.string());
  } catch (const YAML::Exception&) {
    const auto first =
        why.issues().empty() ? std::string(why.what()) : why.issues().front().to_string();
    throw CliError(kExitRefused, "cannot read the control socket from the config: " + first);
  }
  if (!root.IsMap() || !root["control_socket"]) {
    return kDefaultSocket;
  }
  const auto node = root["control_socket"];
  if (!node.IsScalar() || node.Scalar().empty()) {
    throw CliError(kExitRefused, fmt::format("{}: control_socket must be a path", file.string()));
  }
  fs::path socket = node.Scalar();
  // Relative paths resolve against the config file's folder, as the daemon resolves them.
  return socket.is_absolute() ? socket : fs::absolute(file).parent_path() / socket;
}

fs::path socket_from_config(const fs::path& file) {
  try {
    return config::load_config_file(file).control_socket;
  } catch (const config::ConfigErrors& e) {
    return socket_from_raw_yaml(file, e);
  }
}

}  // namespace

fs::path resolve_socket(const GlobalOptions& options, const char* env_socket) {
  if (!options.socket.empty()) {
    return options.socket;
  }
  if (env_socket != nullptr && *env_socket != '\0') {
    return env_socket;
  }
  if (!options.config.empty()) {
    return socket_from_config(options.config);
  }
  return kDefaultSocket;
}

}  // namespace barista::cli
