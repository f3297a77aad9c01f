#pragma once

/// @file abi.hpp
/// The SDK's ABI number and the manifest every plugin exports.

#include <cstdint>

namespace barista {

/// The ABI a plugin is built for. baristad refuses a plugin whose manifest names another one.
/// Raised whenever a type that crosses the plugin boundary changes its layout or meaning.
inline constexpr std::uint32_t kSdkAbi = 1;

/// The SDK's version, for `baristad --version`.
inline constexpr const char* kSdkVersion = "1.2.0";

/// Leading bytes of every manifest.
inline constexpr char kManifestMagic[8] = {'B', 'A', 'R', 'I', 'S', 'T', 'A', '\0'};

/// What a plugin says about itself. Plain bytes without pointers, placed in the ELF section
/// `.barista_manifest`, so that the daemon reads and checks it from the file before it loads the
/// library, i.e. before any plugin code (even a static constructor) runs. `magic` and `abi` come
/// first and stay first in every future ABI, so that any daemon can read them.
struct PluginManifest {
  char magic[8];      ///< kManifestMagic
  std::uint32_t abi;  ///< kSdkAbi of the SDK the plugin was built with
  char name[64];      ///< the plugin's name, NUL-terminated, e.g. "upper"
  char version[32];   ///< the plugin's own version, NUL-terminated, e.g. "1.0.0"
};

}  // namespace barista
